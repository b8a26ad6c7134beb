"""Progress a user sees on stderr: the bar of images counts the tiles of a large image (``tile k/n``), in
``gains predict`` and ``gains eval``; ``--quiet`` prints nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile

from gains.cli import main

# --scale 1: tiles of 32 px overlapping by 8 start every 24 px: 0, 24, 48 along 80 px, so 3 x 3 tiles
TILES = ["--tile", "32", "--overlap", "8", "--scale", "1", "--device", "cpu"]


def tile_counts(err: str) -> list[str]:
    return re.findall(r"tile (\d+/\d+)", err)


def test_predict_shows_the_tiles_of_a_large_image(tiny_run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "a_big.tif", (rng.random((80, 80)) * 255).astype(np.uint8))
    tifffile.imwrite(tmp_path / "b_small.tif", (rng.random((30, 30)) * 255).astype(np.uint8))  # one tile
    proc = subprocess.run([sys.executable, "-m", "gains", "predict", str(tiny_run), str(tmp_path / "a_big.tif"),
                           str(tmp_path / "b_small.tif"), "--out", str(tmp_path / "out"), "--format", "coco", *TILES],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert tile_counts(proc.stderr) == [f"{k}/9" for k in range(1, 10)]  # the whole small image shows none
    assert "2/2 [" in proc.stderr  # the bar of images ends at 2 of 2


def test_quiet_predict_prints_no_progress(tiny_run: Path, tmp_path: Path, capsys) -> None:
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((80, 80), np.uint8))
    assert main(["predict", str(tiny_run), str(tmp_path / "big.tif"), "--out", str(tmp_path / "out"), "--format",
                 "coco", *TILES, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_eval_shows_images_and_tiles(tiny_run: Path, tmp_path: Path, capsys) -> None:
    data = tiny_run / "data" / "val"  # 2 images of 96 x 96: 48 px tiles start at 0, 40, 48 -> 9 tiles each
    args = ["eval", str(tiny_run), "--data", str(data), "--split", "all", "--scale", "1", "--device", "cpu"]
    assert main([*args, "--tile", "48", "--overlap", "8", "--out", str(tmp_path / "ev")]) == 0
    err = capsys.readouterr().err
    assert tile_counts(err) == [f"{k}/9" for k in range(1, 10)] * 2 and "eval: 100%" in err
    assert main([*args, "--out", str(tmp_path / "quiet"), "--quiet"]) == 0  # whole images: quick
    assert capsys.readouterr().err == ""
