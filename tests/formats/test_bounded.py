"""The writers on whole-slide sizes: memory follows the tile and the crops, never the image.

A 30000 x 30000 image with a handful of instances (its pixels a read-only zarr array, as a lazy plane would be)
and 2000 overlapping instances on 4000 x 4000 go through ``labels``, ``overlay``, ``omezarr`` and ``csv``: the
files read back to the hand-painted values at every crop, and numpy's traced allocations peak far below one
full-size label layer (30000^2 uint16 is 1.7 GiB). The labels files are, value for value, what the full-size
greedy layers of the code before gave (``reference_layers`` below is that code).
"""

from __future__ import annotations

import csv
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from gains.core.images import read_image
from gains.core.masks import Instance, MaskCrop, tight_crop
from gains.formats import ga, labels, measurements, omezarr, overlay
from gains.formats.result import ImageResult
from gains.intensity import DEFAULT
from gains.visualize import instance_colours, outline

MiB = 1 << 20
CATEGORIES = [{"id": 1, "name": "cell"}]


def disc_crop(y: int, x: int, r: float) -> MaskCrop:
    """A disc of radius ``r`` whose box starts at image row ``y``, column ``x``."""
    side = int(2 * r) + 1
    yy, xx = np.mgrid[:side, :side]
    crop = tight_crop(np.hypot(yy - r, xx - r) <= r)
    return MaskCrop(y, x, crop.mask)


def random_instances(side: int, n: int, seed: int) -> list[Instance]:
    """``n`` discs (radius 5 to 20) at random places of a ``side``-pixel image, many overlapping."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        r = float(rng.uniform(5, 20))
        y, x = (int(v) for v in rng.integers(0, side - 2 * r - 1, 2))
        out.append(Instance(1, 1.0 - k / (n + 1), disc_crop(y, x, r)))
    return out


def reference_layers(instances: list[Instance], height: int, width: int) -> list[np.ndarray]:
    """The greedy full-size label layers as the code before painted them (pinned here)."""
    dtype = np.uint16 if len(instances) < 65536 else np.uint32
    layers: list[np.ndarray] = []
    for k, inst in enumerate(instances):
        m = inst.mask
        for layer in layers:
            region = layer[m.y0 : m.y1, m.x0 : m.x1]
            if not region[m.mask].any():
                region[m.mask] = k + 1
                break
        else:
            layer = np.zeros((height, width), dtype=dtype)
            layer[m.y0 : m.y1, m.x0 : m.x1][m.mask] = k + 1
            layers.append(layer)
    return layers or [np.zeros((height, width), dtype=dtype)]


def pattern(y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """The test image's pixels over a window: ``(row + 3 * col) % 997`` (uint16)."""
    yy, xx = np.mgrid[y0 : y0 + h, x0 : x0 + w]
    return ((yy + 3 * xx) % 997).astype(np.uint16)


def lazy_pixels(folder: Path, side: int, instances: list[Instance]) -> zarr.Array:
    """A (side, side) uint16 zarr array, 0 but for ``pattern`` under every instance's box; opened read-only."""
    store = str(folder / "pixels.zarr")
    array = zarr.create_array(store=store, shape=(side, side), chunks=(1024, 1024), dtype="uint16", fill_value=0)
    for inst in instances:
        m = inst.mask
        array[m.y0 : m.y1, m.x0 : m.x1] = pattern(m.y0, m.x0, m.y1 - m.y0, m.x1 - m.x0)
    return zarr.open_array(store, mode="r")


def peak_mib(write, *args) -> tuple[list[Path], float]:
    """What ``write(*args)`` returns and its traced allocation peak (numpy's included) in MiB."""
    tracemalloc.start()
    try:
        paths = write(*args)
        return paths, tracemalloc.get_traced_memory()[1] / MiB
    finally:
        tracemalloc.stop()


def check_layers_at_crops(layers: list, instances: list[Instance], where: list[int], margin: int = 3) -> None:
    """Around every crop (its box grown by ``margin``), layer j holds value k + 1 on the mask of each instance k
    with ``where[k] == j`` and 0 elsewhere; read a window at a time from arrays that may be lazy."""
    crops = [i.mask for i in instances]
    for c in crops:
        y0, x0 = max(c.y0 - margin, 0), max(c.x0 - margin, 0)
        for j, layer in enumerate(layers):
            window = np.asarray(layer[y0 : c.y1 + margin, x0 : c.x1 + margin])
            want = np.zeros_like(window)
            for k, other in enumerate(crops):
                r0, r1 = max(other.y0, y0), min(other.y1, y0 + window.shape[0])
                c0, c1 = max(other.x0, x0), min(other.x1, x0 + window.shape[1])
                if where[k] == j and r0 < r1 and c0 < c1:
                    mask = other.mask[r0 - other.y0 : r1 - other.y0, c0 - other.x0 : c1 - other.x0]
                    want[r0 - y0 : r1 - y0, c0 - x0 : c1 - x0][mask] = k + 1
            np.testing.assert_array_equal(window, want)


@pytest.mark.parametrize("height, width, n", [(300, 200, 30), (1100, 1300, 400)])
def test_label_tiffs_are_todays_layers(tmp_path: Path, height: int, width: int, n: int) -> None:
    instances = random_instances(min(height, width), n, seed=n)
    want = reference_layers(instances, height, width)
    assert len(want) >= 2, "the scene has overlaps"
    paths = labels.write(ImageResult(instances, CATEGORIES, height, width), tmp_path, "im")
    assert [p.name for p in paths] == [f"im_labels_layer{k}.tif" for k in range(len(want))]
    for path, layer in zip(paths, want, strict=True):
        for got in (tifffile.imread(path), read_image(path)):
            assert got.dtype == np.uint16
            np.testing.assert_array_equal(got, layer)
        with tifffile.TiffFile(path) as tif:
            assert tif.pages[0].is_tiled == (height > labels.TILE or width > labels.TILE)
    for got, layer in zip(labels.label_layers(instances, height, width), want, strict=True):
        np.testing.assert_array_equal(got, layer)
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_ground_truth_overlaps_are_named_as_before(tmp_path: Path) -> None:
    a, b, c = disc_crop(10, 10, 8), disc_crop(40, 40, 6), disc_crop(12, 14, 5)  # c overlaps a, not b
    result = ImageResult([Instance(1, 1.0, m) for m in (a, b, c)], CATEGORIES, 64, 64, ids=[7, 8, 9], truth=True)
    with pytest.raises(ValueError, match="annotations 7 and 9 overlap"):
        labels.write(result, tmp_path, "a")
    assert not (tmp_path / "labels").exists() or not list((tmp_path / "labels").iterdir())


def test_a_30000_pixel_slide_stays_within_a_few_tiles(tmp_path: Path, monkeypatch) -> None:
    side = 30000
    # across tile (512) and chunk (1024) seams, two overlapping, one in the far corner
    crops = [disc_crop(1000, 1000, 30), disc_crop(1020, 1030, 25), disc_crop(5110, 20470, 12),
             disc_crop(29950, 29950, 20), disc_crop(15000, 300, 9), disc_crop(16383, 8191, 40)]
    instances = [Instance(1, 0.9 - 0.1 * k, c) for k, c in enumerate(crops)]
    pixels = lazy_pixels(tmp_path, side, instances)
    result = ImageResult(instances, CATEGORIES, side, side, file_name="slide.zarr", pixels=pixels,
                         normalisation=DEFAULT)
    monkeypatch.setattr(overlay, "OVERLAY_MAX_SIDE", 1024)
    omezarr.require()  # its imports apart from the measurement

    paths, peak = peak_mib(labels.write, result, tmp_path, "slide")
    assert peak < 64, f"labels: {peak:.1f} MiB"
    assert [p.name for p in paths] == ["slide_labels_layer0.tif", "slide_labels_layer1.tif"]
    where = [0, 1, 0, 0, 0, 0]
    stores = [zarr.open_array(tifffile.imread(p, aszarr=True), mode="r") for p in paths]
    check_layers_at_crops(stores, instances, where)
    assert np.asarray(stores[1][20000:20512, 512:1024]).max() == 0

    (folder,), peak = peak_mib(omezarr.write, result, tmp_path, "slide")
    assert peak < 64, f"omezarr: {peak:.1f} MiB"
    group = zarr.open_group(str(folder / "labels"), mode="r")
    check_layers_at_crops([group["layer0/0"], group["layer1/0"]], instances, where)
    reached = {(int(y + c.y0) // 1024, int(x + c.x0) // 1024) for k, c in enumerate(crops) if where[k] == 0
               for y, x in zip(*np.nonzero(c.mask), strict=True)}
    assert group["layer0/0"].nchunks_initialized == len(reached) == 13  # only chunks holding instances are stored

    (png,), peak = peak_mib(overlay.write, result, tmp_path, "slide")
    assert peak < 64, f"overlay: {peak:.1f} MiB"
    step = 30  # ceil(30000 / 1024)
    rgb = np.asarray(Image.open(png))
    assert rgb.shape == (1000, 1000, 3)
    small = overlay.downsampled(crops[5], step)  # the largest disc, overlapping no other
    edge = outline(small.mask)
    colour = np.round(instance_colours(len(crops))[5] * 255).astype(np.uint8)
    assert (rgb[small.y0 : small.y1, small.x0 : small.x1][edge] == colour).all()

    (table,), peak = peak_mib(measurements.write, result, tmp_path, "slide")
    assert peak < 64, f"csv: {peak:.1f} MiB"
    rows = list(csv.DictReader(table.open()))
    for row, c in zip(rows, crops, strict=True):
        values = pattern(c.y0, c.x0, *c.mask.shape)[c.mask]
        assert float(row["mean_intensity_c0"]) == pytest.approx(values.mean())
        assert int(row["max_intensity_c0"]) == values.max() and int(row["area"]) == c.area
    assert rows[0]["overlaps"] == "2" and rows[2]["overlaps"] == ""


@pytest.mark.slow
def test_2000_overlapping_instances_on_4000_pixels(tmp_path: Path, monkeypatch) -> None:
    side, n = 4000, 2000
    instances = random_instances(side, n, seed=1)
    crops = [i.mask for i in instances]
    pixels = lazy_pixels(tmp_path, side, instances)
    result = ImageResult(instances, CATEGORIES, side, side, file_name="dense.png", pixels=pixels,
                         normalisation=DEFAULT)
    monkeypatch.setattr(overlay, "OVERLAY_MAX_SIDE", 1024)
    omezarr.require()
    full_layer = side * side * 2 / MiB  # 30.5 MiB: the least the code before held, per layer

    paths, peak = peak_mib(labels.write, result, tmp_path, "dense")
    assert len(paths) >= 2 and peak < full_layer / 2, f"labels: {peak:.1f} MiB"
    want = reference_layers(instances, side, side)
    for path, layer in zip(paths, want, strict=True):
        np.testing.assert_array_equal(tifffile.imread(path), layer)

    (folder,), peak = peak_mib(omezarr.write, result, tmp_path, "dense")
    assert peak < full_layer, f"omezarr: {peak:.1f} MiB"
    group = zarr.open_group(str(folder / "labels"), mode="r")
    assert sorted(group.group_keys()) == [f"layer{k}" for k in range(len(want))]
    for k, layer in enumerate(want):
        np.testing.assert_array_equal(group[f"layer{k}/0"][:], layer)
        np.testing.assert_array_equal(group[f"layer{k}/1"][:], layer[::2, ::2])

    _, peak = peak_mib(overlay.write, result, tmp_path, "dense")
    assert peak < full_layer, f"overlay: {peak:.1f} MiB"

    (table,), peak = peak_mib(measurements.write, result, tmp_path, "dense")
    assert peak < full_layer / 2, f"csv: {peak:.1f} MiB"
    rows = list(csv.DictReader(table.open()))
    for k in (0, 777, n - 1):
        c = crops[k]
        values = pattern(c.y0, c.x0, *c.mask.shape)[c.mask]
        assert float(rows[k]["mean_intensity_c0"]) == pytest.approx(values.mean())


def with_ga(instances: list[Instance], seed: int) -> list[Instance]:
    """The instances with a random GA map in [1, 3) over each crop."""
    rng = np.random.default_rng(seed)
    return [Instance(i.category_id, i.score, i.mask, (1 + 2 * rng.random(i.mask.mask.shape)).astype(np.float32))
            for i in instances]


@pytest.mark.parametrize("height, width, n", [(300, 200, 30), (1100, 1300, 400)])
def test_ga_tiff_and_png_are_the_full_size_map(tmp_path: Path, height: int, width: int, n: int) -> None:
    instances = with_ga([i for i in random_instances(max(height, width), n, 3) if i.mask.y1 <= height
                         and i.mask.x1 <= width], 4)
    result = ImageResult(instances, CATEGORIES, height, width)
    tif, png = ga.write(result, tmp_path, "img")
    full = ga.ga_image(instances, height, width)
    np.testing.assert_array_equal(tifffile.imread(tif), full)
    np.testing.assert_array_equal(read_image(tif), full)
    np.testing.assert_array_equal(np.asarray(Image.open(png)), ga._inferno(full))  # as drawn from the whole map


def test_ga_of_a_30000_pixel_slide_stays_within_a_few_tiles(tmp_path: Path, monkeypatch) -> None:
    crops = [disc_crop(1000, 1000, 30), disc_crop(1020, 1030, 25), disc_crop(29950, 29950, 20)]
    instances = with_ga([Instance(1, 0.9 - 0.1 * k, c) for k, c in enumerate(crops)], 5)
    monkeypatch.setattr(overlay, "OVERLAY_MAX_SIDE", 1024)
    (tif, png), peak = peak_mib(ga.write, ImageResult(instances, CATEGORIES, 30000, 30000), tmp_path, "slide")
    assert peak < 64, f"ga: {peak:.1f} MiB"
    store = zarr.open_array(tifffile.imread(tif, aszarr=True), mode="r")
    window = np.asarray(store[990:1100, 990:1100])
    np.testing.assert_array_equal(window, ga._window(instances, [0, 1], 990, 990, 110, 110))
    assert np.asarray(store[20000:20512, 0:512]).min() == 1.0
    assert np.asarray(Image.open(png)).shape == (1000, 1000, 3)
