"""``gains predict --resume`` in one process: finished images are skipped and counted, changed ones predicted again,
and every run ends with ``index.json``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ASSET = Path(__file__).resolve().parents[1] / "assets" / "dsb2018_29780b28.png"  # CC0, 256 x 256


def gains(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gains", *args], capture_output=True, text=True, timeout=600)


def test_resume_skips_finished_images_and_redoes_changed_ones(tmp_path: Path) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    rgb = np.asarray(Image.open(ASSET).convert("RGB"))
    for k in range(3):
        Image.fromarray(np.roll(rgb, 50 * k, axis=0)).save(folder / f"f{k}.png")
    args = ["predict", "nuclei", str(folder), "--out", str(out), "--quiet", "--format", "coco,csv", "--resume"]
    first = gains(*args)
    assert first.returncode == 0, first.stderr
    index = json.loads((out / "index.json").read_text())
    assert index["engine"] == "local" and index["resumed_images"] == 0
    assert [i["files"] for i in index["images"]] == [[f"f{k}_objects.csv"] for k in range(3)]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*_objects.csv")}
    results = (out / "results.json").read_text()

    again = gains(*args)
    assert again.returncode == 0, again.stderr
    assert "3 images, 3 of them done by an earlier run" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*_objects.csv")} == stamps
    assert (out / "results.json").read_text() == results  # the whole-run files rebuilt from the records

    Image.fromarray(rgb[::-1]).save(folder / "f1.png")  # a changed input is predicted again
    changed = gains(*args)
    assert changed.returncode == 0, changed.stderr
    assert "3 images, 2 of them done by an earlier run" in changed.stdout
    assert (out / "f1_objects.csv").stat().st_mtime_ns != stamps["f1_objects.csv"]
    assert (out / "f0_objects.csv").stat().st_mtime_ns == stamps["f0_objects.csv"]

    other = gains(*args[:-1], "--score-thresh", "0.9", "--resume")  # other settings: nothing is reused
    assert other.returncode == 0, other.stderr
    assert "done by an earlier run" not in other.stdout

    plain = gains(*args[:-1])  # without --resume every image is predicted
    assert plain.returncode == 0 and "done by an earlier run" not in plain.stdout
