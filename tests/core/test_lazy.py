"""gains.core.lazy: OME-Zarr, plain Zarr arrays and (pyramidal) TIFFs read region by region through
``read_planes(..., lazy=)``, each read checked against the array written or the eager read of the same file."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

import gains.core.images as images
from gains.core.images import check_input, check_inputs, is_image_path, read_image, read_planes
from gains.core.lazy import LazyPlane, choose_level
from gains.core.planes import PlaneChoice
from gains.errors import InputError

RNG = np.random.default_rng(7)
H, W = 300, 260
REGIONS = [(slice(None), slice(None)), (slice(10, 140), slice(33, 250)), (slice(0, 300, 8), slice(0, 260, 8)),
           (slice(5, 299, 3), slice(7, 101, 5)), (slice(100, 100), slice(0, 10)), (slice(290, 400), slice(250, 999))]


def pyramid(image: np.ndarray, n: int) -> list[np.ndarray]:
    """Levels 0..n-1 of a plain 2x pyramid over the last two axes."""
    return [image[..., :: 2**k, :: 2**k] for k in range(n)]


def write_ngff(path: Path, image: np.ndarray, axes: str, levels: int, version: str) -> Path:
    """An OME-Zarr image written with plain zarr and the NGFF 0.4 (zarr v2) or 0.5 (zarr v3) attributes."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    datasets = []
    for k, level in enumerate(pyramid(image, levels)):
        group.create_array(str(k), shape=level.shape, chunks=(1,) * (level.ndim - 2) + (64, 64),
                           dtype=level.dtype)[...] = level
        scale = [1.0] * (level.ndim - 2) + [0.25 * 2**k, 0.25 * 2**k]
        datasets.append({"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    multiscales = [{"version": version, "axes": [{"name": a} for a in axes], "datasets": datasets}]
    if version == "0.4":
        group.attrs["multiscales"] = multiscales
    else:
        group.attrs["ome"] = {"version": version, "multiscales": multiscales}
    return path


def lazy_pixels(path: Path, choice: PlaneChoice = PlaneChoice(), lazy: bool | None = None) -> LazyPlane:
    (plane,) = read_planes(path, choice, lazy=lazy)
    assert isinstance(plane.pixels, LazyPlane)
    return plane.pixels


def assert_regions(plane: LazyPlane, expected: np.ndarray) -> None:
    """Every region of REGIONS reads as numpy slicing of ``expected`` gives it, C-contiguous, in plane.dtype."""
    assert plane.shape == expected.shape and plane.ndim == expected.ndim and plane.dtype == expected.dtype
    for ys, xs in REGIONS:
        got = plane[ys, xs]
        assert isinstance(got, np.ndarray) and got.flags.c_contiguous and got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected[ys, xs])
    np.testing.assert_array_equal(plane[20:30], expected[20:30])  # one slice: rows
    np.testing.assert_array_equal(plane[::8, ::8], expected[::8, ::8])


# OME-Zarr -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_reads_regions_levels_and_chooses_the_level(tmp_path: Path, version: str) -> None:
    image = RNG.integers(0, 60000, (H, W), dtype=np.uint16)
    path = write_ngff(tmp_path / "slide.ome.zarr", image, "yx", 3, version)
    assert is_image_path(path) and check_input(path) == [""]
    plane = lazy_pixels(path)
    assert plane.label == "" and plane.path == path and plane.downsample == 1.0
    assert_regions(plane, image)
    levels = plane.levels
    assert [p.downsample for p in levels] == [1.0, 2.0, 4.0]
    assert [p.shape for p in levels] == [(300, 260), (150, 130), (75, 65)]
    np.testing.assert_array_equal(levels[2][10:40, ::3], image[::4, ::4][10:40, ::3])
    # coarsest level with scale * d <= 1, and the scale left to apply to it
    for scale, (level, rest) in [(0.5, (1, 1.0)), (0.3, (1, 0.6)), (0.25, (2, 1.0)), (0.1, (2, 0.4)),
                                 (1.0, (0, 1.0)), (1.5, (0, 1.5)), (0.5000001, (1, 1.0000002))]:
        chosen, applied = choose_level(levels[2], scale)
        assert chosen.level == level and applied == pytest.approx(rest)
    # lazy=False decodes the plane into an array; so do the dataset readers
    (eager,) = read_planes(path, lazy=False)
    assert isinstance(eager.pixels, np.ndarray)
    np.testing.assert_array_equal(eager.pixels, image)
    np.testing.assert_array_equal(read_image(path), image)


def test_ome_zarr_czyx_planes_channels_and_refusals(tmp_path: Path) -> None:
    ome_writer = pytest.importorskip("ome_zarr.writer")
    image = RNG.integers(0, 255, (3, 2, H, W), dtype=np.uint8)  # C, Z, Y, X
    path = tmp_path / "czyx.zarr"
    ome_writer.write_image(image, zarr.open_group(str(path), mode="w"), axes="czyx", scale_factors=(2, 4))
    planes = read_planes(path, lazy=None)
    assert [p.label for p in planes] == ["z0", "z1"] == check_input(path, lazy=None)
    assert_regions(planes[1].pixels, np.moveaxis(image[:, 1], 0, -1))  # all 3 channels, last
    picked = lazy_pixels(path, PlaneChoice(z=1, channels=(2, 0)))
    assert picked.label == "z1" and picked.shape == (H, W, 2)
    assert_regions(picked, np.stack([image[2, 1], image[0, 1]], axis=-1))
    grey = lazy_pixels(path, PlaneChoice(z=0, channels=(1,)))
    assert_regions(grey, image[1, 0])  # one channel: squeezed
    assert [p.downsample for p in grey.levels] == [1.0, 2.0, 4.0]
    assert grey.levels[1].shape == (150, 130)
    with pytest.raises(InputError, match=r"czyx.zarr: --channels 3 but the image has 3 channel\(s\) \(0..2\)"):
        read_planes(path, PlaneChoice(channels=(0, 3)), lazy=None)
    with pytest.raises(InputError, match=r"czyx.zarr: --z 2 but the image has 2 Z planes"):
        check_input(path, PlaneChoice(z=2), lazy=None)
    five = write_ngff(tmp_path / "five.zarr", RNG.integers(0, 9, (5, 40, 40), dtype=np.uint8), "cyx", 1, "0.4")
    with pytest.raises(InputError, match=r"five.zarr: 5 channels; pass --channels with up to 3"):
        read_planes(five, lazy=None)
    with pytest.raises(InputError, match=r"five.zarr: --axes 'ZYXC' does not fit shape \(5, 40, 40\)"):
        read_planes(five, PlaneChoice(axes="ZYXC"), lazy=None)
    group = zarr.open_group(str(tmp_path / "bare.zarr"), mode="w")
    group.create_array("0", shape=(40, 40), dtype="u1")
    with pytest.raises(InputError, match=r"bare.zarr: a Zarr group without OME-Zarr \"multiscales\""):
        check_input(tmp_path / "bare.zarr")


# plain Zarr arrays ------------------------------------------------------------------------------------------------


def test_plain_zarr_arrays_axes_dtype_and_size_limit(tmp_path: Path) -> None:
    image = RNG.normal(size=(H, W)).astype(np.float16)
    path = tmp_path / "plain.zarr"
    zarr.create_array(str(path), shape=image.shape, chunks=(50, 70), dtype=image.dtype)[...] = image
    plane = lazy_pixels(path, PlaneChoice(max_bytes=1000))  # lazily read: not bounded by --max-input-gib
    assert plane.dtype == np.float32 and plane.levels == [plane]
    assert_regions(plane, image.astype(np.float32))
    assert choose_level(plane, 0.5) == (plane, 0.5)
    with pytest.raises(InputError, match=r"plain.zarr: header promises 300 x 260 float16 .* over the"):
        read_planes(path, PlaneChoice(max_bytes=1000), lazy=False)
    stack = RNG.integers(0, 99, (3, 64, 48), dtype=np.int16)
    zarr.create_array(str(tmp_path / "stack"), shape=stack.shape, chunks=(1, 32, 32), dtype=stack.dtype)[...] = stack
    assert is_image_path(tmp_path / "stack")  # a folder holding zarr.json, no .zarr suffix
    with pytest.raises(InputError, match=r"stack: Zarr array of shape \(3, 64, 48\) without axis names; pass "
                                         r"--axes with one letter per axis, e.g. --axes ZYX, TYX, CYX or YXC"):
        read_planes(tmp_path / "stack", lazy=None)
    planes = read_planes(tmp_path / "stack", PlaneChoice(axes="tyx"), lazy=None)
    assert [p.label for p in planes] == ["t0", "t1", "t2"]
    assert_regions(planes[2].pixels, stack[2])
    assert_regions(lazy_pixels(tmp_path / "stack", PlaneChoice(axes="CYX")), np.moveaxis(stack, 0, -1))


# TIFF -------------------------------------------------------------------------------------------------------------


def test_pyramidal_tiff_reads_like_the_eager_reader(tmp_path: Path) -> None:
    image = RNG.integers(0, 60000, (H, W), dtype=np.uint16)
    path = tmp_path / "slide.ome.tif"
    with tifffile.TiffWriter(path, byteorder=">") as tif:  # big-endian: planes come in native byte order
        tif.write(image, subifds=2, tile=(64, 64), metadata={"axes": "YX"})
        for level in pyramid(image, 3)[1:]:
            tif.write(level, subfiletype=1, tile=(64, 64))
    (eager,) = read_planes(path, lazy=False)
    np.testing.assert_array_equal(eager.pixels, image)
    assert isinstance(read_planes(path, lazy=None)[0].pixels, np.ndarray)  # small: decoded
    plane = lazy_pixels(path, lazy=True)
    assert plane.dtype == np.dtype("uint16") and plane.dtype.isnative
    assert_regions(plane, eager.pixels)
    assert [(p.shape, p.downsample) for p in plane.levels] == [((300, 260), 1.0), ((150, 130), 2.0),
                                                               ((75, 65), 4.0)]
    np.testing.assert_array_equal(plane.levels[1][:, :], image[::2, ::2])
    level, applied = choose_level(plane, 0.3)
    assert (level.shape, applied) == ((150, 130), pytest.approx(0.6))


def test_tiff_planes_channels_alpha_and_the_automatic_switch(tmp_path: Path, monkeypatch) -> None:
    rgba = RNG.integers(0, 255, (H, W, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"], tile=(64, 64))
    stack = RNG.integers(-30000, 30000, (2, 3, 5, H, W), dtype=np.int16)  # T, C, Z, Y, X
    tifffile.imwrite(tmp_path / "s.ome.tif", stack, metadata={"axes": "TCZYX"})
    for path, choice in [(tmp_path / "rgba.tif", PlaneChoice()), (tmp_path / "rgba.tif", PlaneChoice(channels=(3, 1))),
                         (tmp_path / "s.ome.tif", PlaneChoice(z=4, t=1)),
                         (tmp_path / "s.ome.tif", PlaneChoice(z=2, t=0, channels=(2,)))]:
        (eager,) = read_planes(path, choice, lazy=False)
        plane = lazy_pixels(path, choice, lazy=True)
        assert plane.label == eager.label
        assert_regions(plane, eager.pixels)
    assert lazy_pixels(tmp_path / "rgba.tif", lazy=True).shape == (H, W, 3)  # alpha dropped
    big = PlaneChoice(z=0, t=0, max_bytes=1000)
    with pytest.raises(InputError, match=r"s.ome.tif: header promises 2 x 3 x 5 x 300 x 260 int16"):
        read_planes(tmp_path / "s.ome.tif", big)
    assert lazy_pixels(tmp_path / "s.ome.tif", big, lazy=True).shape == (H, W, 3)
    monkeypatch.setattr(images, "LAZY_BYTES", 1000)  # lazy=None: TIFFs over it are read lazily
    assert check_inputs([tmp_path / "s.ome.tif"], big, lazy=None) == [(tmp_path / "s.ome.tif", "z0_t0")]
    assert isinstance(read_planes(tmp_path / "s.ome.tif", big, lazy=None)[0].pixels, LazyPlane)


# the object itself ----------------------------------------------------------------------------------------------


def test_pickles_as_a_path_and_reopens_on_first_read(tmp_path: Path) -> None:
    image = RNG.integers(0, 255, (2, H, W), dtype=np.uint8)
    path = write_ngff(tmp_path / "p.zarr", image, "zyx", 2, "0.5")
    plane = lazy_pixels(path, PlaneChoice(z=1))
    expected = plane[40:90, 3:200:2]
    for state in (pickle.dumps(plane), pickle.dumps(plane.levels[1])):
        assert len(state) < 2000  # the path and the selection, never pixels
    clone = pickle.loads(pickle.dumps(plane))
    assert clone.label == "z1" and clone.shape == (H, W)
    np.testing.assert_array_equal(clone[40:90, 3:200:2], expected)
    np.testing.assert_array_equal(np.asarray(clone), image[1])
    assert len(pickle.dumps(clone)) < 2000  # an opened array is not pickled either
    tiff = tmp_path / "t.tif"
    tifffile.imwrite(tiff, image[0], tile=(64, 64))
    opened = lazy_pixels(tiff, lazy=True)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(opened))[::7, ::9], image[0, ::7, ::9])
    opened[0:1, 0:1]
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(opened))[5:9], image[0, 5:9])
    opened.close()
    with pytest.raises(TypeError, match="slice or a"):
        opened[3]
    with pytest.raises(ValueError, match="step >= 1"):
        opened[::-1]


def test_is_image_path(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "a.TIF", np.zeros((20, 20), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty.zarr").mkdir()
    (tmp_path / "folder").mkdir()
    zarr.open_group(str(tmp_path / "v2"), mode="w", zarr_format=2)
    assert is_image_path(tmp_path / "a.TIF") and is_image_path(tmp_path / "empty.zarr")
    assert is_image_path(tmp_path / "v2")  # .zgroup
    assert not any(is_image_path(tmp_path / n) for n in ("notes.txt", "folder", "missing.tif", "missing.zarr"))
    with pytest.raises(InputError, match=r"folder: image file not found"):
        read_planes(tmp_path / "folder")
    with pytest.raises(InputError, match=r"empty.zarr: unreadable image"):
        check_input(tmp_path / "empty.zarr")
