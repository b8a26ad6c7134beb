"""ImageJ itself reads the ROI zip back: each ROI fills exactly its instance's pixels (even-odd composites
included) and measures its pixel count. Runs where a Java runtime, ImageJ (``ij.jar``: Debian's libij-java,
or ``GAINS_IJ_JAR``) and ``xvfb-run`` (the ROI Manager needs a display) are installed; skips elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from gains.core.masks import tight_crop
from gains.formats import imagej
from gains.formats.records import Record
from tests.formats.helpers import H, W, predicted, scene

MACRO = Path(__file__).with_name("ij_masks.ijm")
IJ_JAR = Path(os.environ.get("GAINS_IJ_JAR", "/usr/share/java/ij.jar"))


def run_imagej(zip_path: Path, height: int, width: int, out: Path) -> list[list[str]]:
    if not (IJ_JAR.is_file() and shutil.which("java") and shutil.which("xvfb-run")):
        pytest.skip("ImageJ (ij.jar), java or xvfb-run not installed")
    out.mkdir()
    proc = subprocess.run(["xvfb-run", "-a", "java", "-jar", str(IJ_JAR), "-batch", str(MACRO),
                           f"{zip_path}|{width}|{height}|{out}"], capture_output=True, text=True, timeout=300)
    rows = [line.split("\t") for line in proc.stdout.splitlines() if line.count("\t") == 4]
    assert proc.returncode == 0 and rows, proc.stdout + proc.stderr
    return rows


@pytest.mark.slow
def test_imagej_fills_each_roi_back_to_its_mask(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    masks = scene()
    while len(masks) < 60:  # salt and pepper and blobs: holes, parts and corner pinches
        h, w = rng.integers(1, 25, 2)
        small = (rng.random((h, w)) < rng.uniform(0.2, 0.8) if len(masks) % 2
                 else ndimage.gaussian_filter(rng.random((h, w)), 1.5) > 0.5)
        mask = np.zeros((H, W), bool)
        y, x = rng.integers(0, 30, 2)
        mask[y : y + h, x : x + w] = small
        if mask.any():
            masks.append(mask)
    records = predicted(masks[:5]) + [Record(k, 1, "cell", tight_crop(m), 0.5) for k, m in enumerate(masks[5:], 6)]
    path = imagej.write_records(records, tmp_path / "img_rois.zip")
    rows = run_imagej(path, H, W, tmp_path / "ij")
    assert len(rows) == len(masks)
    types = {int(r[2]) for r in rows}
    assert types == {4, 9}  # ImageJ's TRACED_ROI and COMPOSITE
    for (k, name, _, area, score), record, mask in zip(rows, records, masks, strict=True):
        assert name == record.label() and float(score) == pytest.approx(record.score)
        assert float(area) == mask.sum()
        filled = np.loadtxt(tmp_path / "ij" / f"{k}.txt") > 0
        np.testing.assert_array_equal(filled, mask)
