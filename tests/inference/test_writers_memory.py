"""The ``gains predict`` writers on dense images: instances stay crops.

The overlay drawn from crops and the GA picture drawn a band of rows at a time are, byte for byte, the PNGs the
code before this change drew from full-size arrays (when that code is at ``GAINS_BASE_SRC``, default
/tmp/base/src); a crop's outline is the full mask's
outline there; COCO RLE is read off a crop without an array of the image's height and equals pycocotools'
encoding of the full mask; every format of 3000 instances on a 3000 x 3000 image fits in 3 GiB of address
space above the imports (the full-size mask per instance the overlay made before needed about 27 GB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from gains.core.masks import MaskCrop, crop_to_rle
from tests.conftest import ROOT

BENCH = "benchmarks.speed.bench_writers"
BASE_SRC = Path(os.environ.get("GAINS_BASE_SRC", "/tmp/base/src"))
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# name: image side, instances, OVERLAY_MAX_SIDE (a small one downscales), grey uint16 (else RGB uint8),
# the model's normalisation (else the min/max stretch)
OVERLAYS = {
    "rgb": (120, 60, 4096, False, True),
    "grey_stretched": (97, 30, 4096, True, False),
    "downscaled_by_3": (130, 90, 50, True, True),
    "downscaled_by_4": (150, 80, 40, False, False),
    "downscaled_past_instances": (300, 40, 10, False, True),  # step 30: most discs miss every grid point
}
DRAW = """
import sys
from pathlib import Path
import numpy as np
from benchmarks.speed.bench_writers import dense_instances, dense_pixels
from gains.intensity import DEFAULT
try:  # the writer registry
    from gains.formats import ga, overlay
    from gains.formats.result import ImageResult
except ImportError:  # the code before it
    from gains.inference import writers as overlay
    ImageResult = None
overlay.BAND_ROWS = 7  # several bands, the last one short (unknown to the old code: harmless there)
out = Path(sys.argv[1])
for name, (size, n, side, grey, norm) in {cases}.items():
    overlay.OVERLAY_MAX_SIDE = side
    instances = dense_instances(size, n, seed=size)
    pixels = dense_pixels(size, instances, seed=size)
    if grey:
        pixels = pixels[..., 0].astype(np.uint16) * 257 + np.arange(size, dtype=np.uint16)
    if ImageResult is None:
        overlay.write_overlay(out / (name + ".png"), pixels, instances, DEFAULT if norm else None)
        overlay.write_ga(out, name, instances, size, size)
    else:
        (out / (name + ".png")).write_bytes(overlay.render(pixels, instances, DEFAULT if norm else None))
        ga.write(ImageResult(instances, [], size, size), out, name)
"""


def _draw_overlays(src: Path, out: Path) -> Path:
    """The OVERLAYS drawn by the ``gains`` package under ``src`` (in a fresh process), into ``out``."""
    out.mkdir()
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
    code = DRAW.format(cases=repr(OVERLAYS))
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def overlays(tmp_path_factory) -> tuple[Path, Path]:
    """(folder drawn by the code before the change, folder drawn now)."""
    if not (BASE_SRC / "gains" / "inference" / "writers.py").is_file():
        pytest.skip(f"{BASE_SRC}: the code before the change is not there (set GAINS_BASE_SRC)")
    tmp = tmp_path_factory.mktemp("overlays")
    return _draw_overlays(BASE_SRC, tmp / "base"), _draw_overlays(ROOT / "src", tmp / "now")


@pytest.mark.parametrize("name", sorted(OVERLAYS))
def test_overlay_and_ga_pngs_are_the_old_ones_byte_for_byte(overlays: tuple[Path, Path], name: str) -> None:
    base, now = overlays
    for file in (f"{name}.png", f"{name}_ga.png", f"{name}_ga.tif"):
        assert (now / file).read_bytes() == (base / file).read_bytes(), file


def _random_crops(rng: np.random.Generator, height: int, width: int, count: int) -> list[MaskCrop]:
    """Crops of random pixels anywhere in the image, many touching its borders, some with empty rows or
    columns (not tight), some full height (so a column's run meets the next column's)."""
    crops = []
    for _ in range(count):
        h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        if rng.random() < 0.2:
            h = height
        y0, x0 = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        mask = rng.random((h, w)) < rng.choice([0.05, 0.5, 0.9, 1.0])
        if rng.random() < 0.3 and w > 2:
            mask[:, 1] = False
        crops.append(MaskCrop(y0, x0, mask))
    return crops


@pytest.mark.parametrize("width", [1, 2, 3])
def test_outline_of_a_crop_is_the_full_masks_outline(width: int) -> None:
    from gains.visualize import outline

    rng = np.random.default_rng(width)
    for crop in _random_crops(rng, 14, 11, 200):
        full = outline(crop.to_dense(14, 11), width)
        assert full[crop.y0 : crop.y1, crop.x0 : crop.x1].sum() == full.sum()  # nothing outside the crop
        np.testing.assert_array_equal(full[crop.y0 : crop.y1, crop.x0 : crop.x1], outline(crop.mask, width))


def test_rle_of_a_crop_is_pycocotools_rle_of_the_full_mask() -> None:
    rng = np.random.default_rng(0)
    cases = [(1, 1, MaskCrop(0, 0, np.ones((1, 1), bool))), (6, 5, MaskCrop(0, 0, np.ones((6, 5), bool))),
             (6, 5, MaskCrop(5, 4, np.ones((1, 1), bool))), (6, 5, MaskCrop(0, 1, np.ones((6, 3), bool))),
             (6, 5, MaskCrop(2, 2, np.zeros((2, 2), bool)))]
    for height, width in [(1, 9), (9, 1), (7, 7), (13, 4), (4, 13)]:
        cases += [(height, width, c) for c in _random_crops(rng, height, width, 150)]
    for height, width, crop in cases:
        full = np.asfortranarray(crop.to_dense(height, width).astype(np.uint8))
        expected = mask_utils.encode(full)
        rle = crop_to_rle(crop, height, width)
        assert rle == {"size": [height, width], "counts": expected["counts"].decode("ascii")}, (crop, height, width)


def test_rle_of_a_crop_in_a_tall_image_allocates_for_the_crop_only() -> None:
    crop = MaskCrop(500_000, 700, np.ones((20, 30), bool))
    tracemalloc.start()
    try:
        rle = crop_to_rle(crop, 1_000_000, 1_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes for a 20 x 30 crop"
    assert mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}) == 600


def test_every_format_of_a_dense_image_fits_in_3_gib(tmp_path: Path) -> None:
    formats = "overlay,coco,labels,ga,imagej,geojson"
    proc = subprocess.run([sys.executable, "-m", BENCH, "--child", formats, "3000", "3000", str(tmp_path), "3"],
                          capture_output=True, text=True, env={**os.environ, **ONE_THREAD}, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["over_limit"] is False, report
    written = sorted(p.name for p in tmp_path.iterdir())
    for name in ("img_overlay.png", "results.json", "img_ga.tif", "img_ga.png", "img_rois.zip", "img.geojson"):
        assert name in written
    assert any(n.startswith("img_labels") for n in written)
    assert not [n for n in written if n.endswith(".tmp")]
