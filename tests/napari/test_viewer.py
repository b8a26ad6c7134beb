"""The plugin in a real napari, as a user meets it: the ``napari`` command in its own process, on a display.

Each test runs ``drive_napari.py`` (napari's own command line plus a timer that acts as the user) under the
display in ``DISPLAY`` or a virtual one from ``xvfb-run``, with an OpenGL canvas. That is where the plugin used
to crash: torch's triton import after napari's OpenGL context exists segfaults on Mesa (exit 139), which the
canvas-less widget tests cannot see. Skipped where napari, a Qt binding, a display server or the system libraries
of Qt's X11 platform plugin are missing (``.ci/run`` installs them on Debian).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy.QtWidgets", exc_type=ImportError)

DRIVER = Path(__file__).with_name("drive_napari.py")
ASSET = Path(__file__).parents[1] / "assets" / "dsb2018_29780b28.png"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.environ.get("DISPLAY") and shutil.which("xvfb-run") is None,
                                                   reason="no display and no xvfb-run")]


def display(cmd: list[str]) -> list[str]:
    """``cmd`` run on the display in ``DISPLAY``, else on a virtual one (``xvfb-run``)."""
    return cmd if os.environ.get("DISPLAY") else ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", *cmd]


def environment() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("QT_QPA_PLATFORM", None)  # the real platform plugin (xcb), not the other tests' offscreen one
    return env


@pytest.fixture(scope="module", autouse=True)
def qt_on_display() -> None:
    """Skip unless a Qt application starts on the display (Qt's xcb plugin needs system libraries)."""
    probe = [sys.executable, "-c", "from qtpy.QtWidgets import QApplication; QApplication([])"]
    done = subprocess.run(display(probe), capture_output=True, text=True, timeout=120, env=environment())
    if done.returncode != 0:
        pytest.skip(f"Qt cannot start on the display: {done.stderr.strip().splitlines()[-1:]}")


def drive(tmp_path: Path, action: str, *args: str, napari_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run the driver; returns its report after checking that napari exited 0 (a crash is -11 or 139)."""
    report = tmp_path / f"{action}.json"
    cmd = display([sys.executable, str(DRIVER), str(report), action, *args, "--", *napari_args])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=environment(), cwd=tmp_path)
    assert done.returncode == 0, f"napari exited {done.returncode}:\n{done.stderr[-3000:]}"
    result = json.loads(report.read_text())
    assert "error" not in result and "dialog" not in result, result
    return result


def layers_of(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [x for x in report["layers"] if x["type"] == kind]


def test_menu_path_segments_an_image(tmp_path: Path) -> None:
    report = drive(tmp_path, "menu", "--image", str(ASSET), "--model", "nuclei")
    assert report["menu_item"]  # Plugins > GAInS > Segment exists and was clicked
    labels = layers_of(report, "labels")
    assert len(labels) == 1 and labels[0]["shape"] == [256, 256] and labels[0]["rows"] > 5
    assert {"index", "score", "category", "area"} <= set(labels[0]["features"])
    assert report["status"] == f"{labels[0]['rows']} instances in 1 label layer(s)"
    ga = next(x for x in report["layers"] if x["name"].endswith(" GA"))
    assert not ga["visible"] and 1.0 < ga["contrast_limits"][0] < ga["contrast_limits"][1]


def test_reader_path_opens_a_predict_folder(tmp_path: Path) -> None:
    out = tmp_path / "pred"
    gains = Path(sys.executable).with_name("gains")
    subprocess.run([str(gains), "predict", "nuclei", str(ASSET), "--out", str(out), "--format", "coco,ga", "--quiet"],
                   check=True, capture_output=True, timeout=600)
    report = drive(tmp_path, "open", napari_args=("--plugin", "gains-seg", str(out)))
    assert [(x["name"], x["type"], x["visible"]) for x in report["layers"]] == [
        ("dsb2018_29780b28", "image", True), ("dsb2018_29780b28 instances", "labels", True),
        ("dsb2018_29780b28 GA", "image", False)]
    n = len(json.loads((out / "results.json").read_text()))
    assert report["layers"][1]["rows"] == n > 5


def test_a_png_opens_with_napari_alone(tmp_path: Path) -> None:
    report = drive(tmp_path, "open", napari_args=(str(ASSET),))  # no reader dialog: gains claims folders only
    assert [(x["name"], x["type"]) for x in report["layers"]] == [("dsb2018_29780b28", "image")]


def test_correct_and_retrain_loop_in_the_menus(tmp_path: Path) -> None:
    report = drive(tmp_path, "loop", "--image", str(ASSET), "--model", "nuclei", "--train-set", str(tmp_path / "set"),
                   "--new-model", str(tmp_path / "model"), "--minutes", "0.1")
    n = layers_of(report, "labels")[0]["rows"]
    assert report["added"] == f"{n} instances of 'dsb2018_29780b28' added: 1 image(s) in {tmp_path / 'set'}"
    assert report["train_status"] == f"new model: {tmp_path / 'model'} (now the Segment widget's model)"
    assert report["model"] == str(tmp_path / "model") and (tmp_path / "model" / "last.pt").is_file()


def test_a_corrected_dataset_saves_as_a_training_set(tmp_path: Path) -> None:
    from gains.core.coco import load_coco
    from gains.data.synth import write_synthetic

    source = write_synthetic("overlap", 2, 128, seed=3, out=tmp_path / "source").parent
    report = drive(tmp_path, "save", "--train-set", str(tmp_path / "set"),
                   napari_args=("--plugin", "gains-seg", str(source)))
    assert report["saved"] == [str(tmp_path / "set")]
    before, after = load_coco(source / "annotations.json"), load_coco(tmp_path / "set" / "annotations.json")
    first = before.images[0]
    assert [im.file_name for im in after.images] == [f"{first.file_name.rsplit('.', 1)[0]}.tif"]
    kept = list(before.anns_by_image[first.id])
    del kept[report["erased"][1] - 1]  # label value k is the image's k-th instance (ground truth: all scores 1)
    saved = after.anns_by_image[after.images[0].id]
    assert after.categories == before.categories  # cell and nucleus keep their ids
    assert sorted(a["category_id"] for a in saved) == sorted(a["category_id"] for a in kept)
    assert sorted(a["area"] for a in saved) == sorted(a["area"] for a in kept)
