"""The HTML report: self-contained, and it renders in headless Chromium (skipped where Chromium is absent)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gains.errors import InputError
from gains.report import build_report


def test_report_is_self_contained(tiny_run: Path, tmp_path: Path) -> None:
    path = build_report(tiny_run, tmp_path / "r.html", n_images=2)
    text = path.read_text()
    assert "<h2>Metrics</h2>" in text and "segm/AP" in text
    assert "trained from scratch on synthetic touch scenes for 1 iterations in" in text
    assert "minutes of training in fp32; the metrics are measured on 2 held-out images" in text  # the run's mode
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) == 3  # loss curves + two examples
    assert not re.search(r"src='(?!data:)", text)  # nothing loaded from elsewhere
    with pytest.raises(InputError, match="not a training run folder"):
        build_report(tmp_path, tmp_path / "x.html")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(tiny_run: Path, tmp_path: Path) -> None:
    path = build_report(tiny_run, tmp_path / "r.html", n_images=1)
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600", f"--screenshot={shot}",
                    path.resolve().as_uri()], capture_output=True, timeout=120, check=False)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1200)
    assert pixels.std() > 20  # text, tables and figures, not a blank page
    assert (pixels < 128).mean() > 0.01
