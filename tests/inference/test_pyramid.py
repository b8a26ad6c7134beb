"""``gains predict`` on a pyramidal OME-Zarr with a scale below 1 reads the pyramid level that matches the model's
scale, and brings the objects back to full-resolution coordinates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.speed.bench_slide import write_mosaic
from gains.core.images import read_planes


def gains(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gains", *args], capture_output=True, text=True, timeout=600)


def entries(folder: Path) -> list[dict]:
    return sorted(json.loads((folder / "results.json").read_text()), key=lambda e: -e["score"])


def test_a_scale_below_one_reads_the_matching_level_and_returns_full_resolution_objects(tmp_path: Path) -> None:
    slide = tmp_path / "slide.ome.zarr"
    write_mosaic(slide, 512, 2, 2)  # nuclei twice the model's size; level 1 = every 2nd pixel
    level = read_planes(slide, lazy=None)[0].pixels.levels[1]
    Image.fromarray(level[:, :]).save(tmp_path / "level1.png")
    on_level = gains("predict", "nuclei", str(tmp_path / "level1.png"), "--out", str(tmp_path / "png"), "--quiet",
                     "--scale", "1", "--format", "coco")
    assert on_level.returncode == 0, on_level.stderr
    pyramid = gains("predict", "nuclei", str(slide), "--out", str(tmp_path / "zarr"), "--quiet", "--scale", "0.5",
                    "--format", "coco")
    assert pyramid.returncode == 0, pyramid.stderr
    small, full = entries(tmp_path / "png"), entries(tmp_path / "zarr")
    assert len(full) == len(small) > 10
    images = json.loads((tmp_path / "zarr" / "images.json").read_text())["images"]
    assert (images[0]["height"], images[0]["width"]) == (512, 512)  # the slide's own coordinates
    for a, b in zip(small, full, strict=True):
        assert abs(a["score"] - b["score"]) < 1e-6
        assert b["bbox"] == [2 * v for v in a["bbox"]]  # each level pixel becomes 2 x 2 slide pixels
    from pycocotools import mask as mask_utils

    areas = np.array([mask_utils.area(e["segmentation"]) for e in full])
    np.testing.assert_array_equal(areas, 4 * np.array([mask_utils.area(e["segmentation"]) for e in small]))
