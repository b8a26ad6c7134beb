"""The public Python API (gains.segment, gains.Model, Segmentation): the README's example runs as written, and an
array gives the instances and scores ``gains predict`` writes for the same image."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from pycocotools import mask as mask_utils

import gains
from gains import api
from gains.cli import main
from gains.core.masks import Instance, MaskCrop
from gains.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    """The first ```python block of the README's "## Python API" section."""
    section = (ROOT / "README.md").read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "no python block under ## Python API"
    return found.group(1)


def test_import_gains_does_not_import_torch() -> None:
    code = "import gains, sys; assert 'torch' not in sys.modules and 'segment' in dir(gains); print(gains.__version__)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        gains.nothing  # noqa: B018


def test_readme_example_runs(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", readme_example()], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    first = done.stdout.splitlines()[0]
    assert re.fullmatch(r"\d+ nuclei, best score 0\.\d+", first) and int(first.split()[0]) >= 10, first


def _toy() -> api.Segmentation:
    """A 6 x 6 image: A (0.9) over rows/cols 1-3, B (0.6) over 2-4, C (0.3) over 2-3 (inside A)."""
    square = np.ones((3, 3), bool)
    insts = (Instance(1, 0.9, MaskCrop(1, 1, square)), Instance(2, 0.6, MaskCrop(2, 2, square)),
             Instance(1, 0.3, MaskCrop(2, 2, np.ones((2, 2), bool))))
    return api.Segmentation(insts, ({"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}), 6, 6)


def test_segmentation_helpers_on_hand_computed_overlaps() -> None:
    seg = _toy()
    expected = np.array([[0, 0, 0, 0, 0, 0],
                         [0, 1, 1, 1, 0, 0],
                         [0, 1, 1, 1, 2, 0],
                         [0, 1, 1, 1, 2, 0],
                         [0, 0, 2, 2, 2, 0],
                         [0, 0, 0, 0, 0, 0]])
    labels = seg.to_labels()
    assert labels.dtype == np.int32 and np.array_equal(labels, expected)  # higher score wins; C is hidden
    layers = seg.label_layers()
    assert len(layers) == 3  # B overlaps A, C overlaps both
    assert np.array_equal(layers[0], (expected == 1) * 1) and np.array_equal(layers[1] > 0, seg.full_mask(1))
    assert np.array_equal(np.argwhere(layers[2] == 3), [[2, 2], [2, 3], [3, 2], [3, 3]])
    assert len(seg) == 3 and [i.score for i in seg] == [0.9, 0.6, 0.3] and seg[1].category_id == 2
    assert seg.scores.tolist() == pytest.approx([0.9, 0.6, 0.3]) and seg.category_ids.tolist() == [1, 2, 1]
    assert seg.boxes.tolist() == [[1, 1, 4, 4], [2, 2, 5, 5], [2, 2, 4, 4]]
    masks = list(seg.masks())
    assert [m.sum() for m in masks] == [9, 9, 4] and masks[2][2:4, 2:4].all()
    coco = seg.to_coco(image_id=7)
    assert [c["bbox"] for c in coco] == [[1, 1, 3, 3], [2, 2, 3, 3], [2, 2, 2, 2]]
    assert all(c["image_id"] == 7 for c in coco)
    decoded = mask_utils.decode({**coco[1]["segmentation"], "counts": coco[1]["segmentation"]["counts"].encode()})
    assert np.array_equal(decoded.astype(bool), masks[1])
    table = seg.measure(np.arange(36, dtype=np.uint8).reshape(6, 6))
    assert table["id"].tolist() == [1, 2, 3] and table["area"].tolist() == [9, 9, 4]
    assert table["overlaps"] == ["2;3", "1;3", "1;2"] and table["category"] == ["cell", "nucleus", "cell"]
    assert table["mean_intensity_c0"].tolist() == [14.0, 21.0, 17.5]  # rows 1-3 x cols 1-3: 6 * 2 + 2, ...
    assert table["max_intensity_c0"].tolist() == [21, 28, 21]
    empty = api.Segmentation((), seg.categories, 5, 4)
    assert len(empty) == 0 and empty.boxes.shape == (0, 4) and not empty.to_labels().any()


def test_predict_gives_what_gains_predict_writes(tiny_run: Path, tmp_path: Path) -> None:
    image = sorted((tiny_run / "data" / "val" / "images").iterdir())[0]
    out = tmp_path / "pred"
    assert main(["predict", str(tiny_run), str(image), "--out", str(out), "--format", "coco,labels",
                 "--score-thresh", "0", "--device", "cpu", "--quiet"]) == 0
    written = json.loads((out / "results.json").read_text())
    model = gains.Model.from_pretrained(tiny_run, device="cpu", score_thresh=0.0)
    seg = model.predict(np.asarray(Image.open(image)))
    assert len(seg) == len(written) > 1
    mine = seg.to_coco()
    assert [e["score"] for e in mine] == pytest.approx([e["score"] for e in written], abs=1e-6)
    assert [e["segmentation"] for e in mine] == [e["segmentation"] for e in written]
    assert [e["category_id"] for e in mine] == [e["category_id"] for e in written]
    files = sorted(out.glob("*_labels*.tif"))
    layers = seg.label_layers()
    assert len(files) == len(layers)
    assert all(np.array_equal(tifffile.imread(f), x) for f, x in zip(files, layers, strict=True))
    assert len(layers) > 1  # overlapping detections at threshold 0: to_labels keeps the higher score
    labels = seg.to_labels()
    first_wins = np.zeros_like(labels)
    for k, mask in enumerate(seg.masks()):
        first_wins[mask & (first_wins == 0)] = k + 1
    assert np.array_equal(labels, first_wins)
    assert (seg.height, seg.width) == Image.open(image).size[::-1]
    assert all(i.ga is not None and i.ga.shape == i.mask.mask.shape for i in seg)  # a GAInS model's maps

    # the same file by path; this call's threshold keeps the instances above it, with the same scores
    above = model.predict(image, score_thresh=0.3)
    assert above.scores.tolist() == [s for s in seg.scores.tolist() if s >= 0.3]


def test_predict_options_per_call_and_progress(tiny_run: Path) -> None:
    model = gains.Model.from_pretrained(str(tiny_run / "last.pt"), device="cpu", score_thresh=0.0)
    pixels = (np.random.default_rng(3).random((96, 96)) * 255).astype(np.uint8)
    steps: list[tuple[int, int]] = []
    model.predict(pixels, progress=lambda d, t: steps.append((d, t)), tile=64, overlap=16)
    assert steps == [(k, 4) for k in range(1, 5)]  # tiles start at 0 and 32 on each axis (the tiny model's scale 1)
    steps.clear()
    model.predict(pixels, progress=lambda d, t: steps.append((d, t)))
    assert steps == [(1, 1)]  # the model's own options again: one whole image
    with pytest.raises(TypeError, match="unknown prediction option"):
        model.predict(pixels, tiles=48)
    with pytest.raises(InputError, match="overlap must be smaller than the tile"):
        model.predict(pixels, tile=32, overlap=32)
    assert model.categories and model.device.type == "cpu" and model.scale_note


@pytest.mark.parametrize(("image", "message"), [
    (np.zeros((3, 64, 64), np.uint8), r"shape 3x64x64: expected \(H, W\) or \(H, W, C\).*moveaxis"),
    (np.zeros((2, 5, 64, 64), np.float32), r"shape 2x5x64x64: expected"),
    (np.zeros((64, 10), np.uint16), r"shape 64x10: gains needs at least 16 pixels"),
    (np.full((32, 32), np.nan, np.float32), r"shape 32x32: 1024 non-finite pixel"),
    (np.zeros((32, 32), np.complex64), r"type complex64: pass real-valued pixels"),
])
def test_bad_arrays_are_one_line_input_errors(tiny_run: Path, image: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        gains.segment(image, model=tiny_run, device="cpu")
    assert "\n" not in str(info.value)


def test_bad_specs_are_one_line_input_errors(tmp_path: Path) -> None:
    for spec, message in [("nucleii", "unknown model 'nucleii'; shipped models: nuclei, overlap"),
                          (tmp_path / "none.pt", "none.pt: checkpoint not found"),
                          (tmp_path, "no best.pt or last.pt in this run folder"),
                          (3, "model 3: pass a shipped model's name")]:
        with pytest.raises(InputError, match=re.escape(message)):
            gains.Model.from_pretrained(spec, device="cpu")
    with pytest.raises(InputError, match=r"missing\.png: image file not found"):
        api.as_pixels(tmp_path / "missing.png")


def test_segment_keeps_the_model_until_its_file_changes(tiny_run: Path, tmp_path: Path, monkeypatch) -> None:
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes((tiny_run / "last.pt").read_bytes())
    loads = []
    real = api.load_model
    monkeypatch.setattr(api, "load_model", lambda *a: loads.append(a[0]) or real(*a))
    pixels = np.zeros((32, 32), np.uint8)
    first = gains.segment(pixels, model=ckpt, device="cpu", score_thresh=0.0)
    gains.segment(pixels, model=ckpt, device="cpu", score_thresh=0.5)
    assert len(loads) == 1 and first.height == 32
    os.utime(ckpt, ns=(0, ckpt.stat().st_mtime_ns + 10**9))  # a rewritten checkpoint is read again
    gains.segment(pixels, model=ckpt, device="cpu")
    assert len(loads) == 2
