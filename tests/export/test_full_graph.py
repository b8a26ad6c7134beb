"""The self-contained ONNX graph (``gains export-model --to onnx --full``): its pieces match what ``gains predict``
does around the model (normalisation, limits, pasting), and the exported file, run by plain onnxruntime in a
process that never imports gains or torch, returns ``gains predict --tile 0``'s instances on an image larger than
the model's test size. The model's metadata travels inside the ONNX file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from gains.cli import main
from gains.export import full
from gains.inference.predictor import _paste_one, limits_for_area
from gains.intensity import Normalisation
from tests.export.test_export_model import CATEGORIES, TINY_MODEL, _checkpoint

# Runs an ONNX file on a .npy image with numpy and onnxruntime only; saves the outputs (.npz) and prints the
# metadata and any gains/torch module that got imported.
HOST = """
import json, sys
import numpy as np
import onnxruntime as ort

model, image, out = sys.argv[1:4]
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
pixels = np.load(image).astype(np.float32)
pixels = pixels[..., None] if pixels.ndim == 2 else pixels
names = [o.name for o in sess.get_outputs()]
np.savez(out, **dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: pixels}))))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("gains", "torch", "torchvision"))
print(json.dumps({"meta": dict(sess.get_modelmeta().custom_metadata_map), "loaded": loaded}))
assert "torch" not in sys.modules and "gains" not in sys.modules
"""


def _discs(height: int, width: int, count: int, seed: int) -> np.ndarray:
    """Uint8 (H, W): bright discs, some touching, on a dark noisy ground."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    img = rng.normal(20, 4, (height, width))
    for _ in range(count):
        cy, cx, r = rng.uniform(10, height - 10), rng.uniform(10, width - 10), rng.uniform(5, 10)
        img[np.hypot(yy - cy, xx - cx) < r] = rng.uniform(150, 230)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ckpt"), "gains")


def test_limits_are_predicts(checkpoint: Path) -> None:
    from gains.inference.loading import load_model

    model, cfg, _ = load_model(checkpoint)
    graph = full.FullGraph(model, Normalisation.of_model(cfg.model), 0.0)
    for h, w in ((40, 50), (96, 96), (97, 96), (312, 281), (160, 96), (1000, 1000)):
        with limits_for_area(model, h, w) as det:
            want = (model.rpn._pre_nms_top_n["testing"], model.rpn._post_nms_top_n["testing"], det)
        got = full.scaled_limits(torch.tensor(h), torch.tensor(w), graph.base, graph.test_area, graph.largest)
        assert tuple(int(v) for v in got) == want
    # by hand for 312 x 281: area / 96^2 = 9.513 -> 60, 40 x 9.513; detections 20 x (96 x 160) / 96^2
    assert graph.base == (60, 40, 20)
    assert [int(v) for v in full.scaled_limits(torch.tensor(312), torch.tensor(281), graph.base, graph.test_area,
                                               graph.largest)] == [571, 381, 33]


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_normalise_is_the_models_normalisation(channels: int, monkeypatch) -> None:
    rng = np.random.default_rng(channels)
    pixels = rng.gamma(2.0, 300.0, (37, 53, channels)).astype(np.float32)
    if channels > 1:
        pixels[..., 1] = 7.0  # a constant channel becomes 0
    for norm in (Normalisation(), Normalisation(percentiles=(0.5, 50.0)), Normalisation("fixed",
                                                                                      value_range=(10.0, 900.0))):
        got = full.normalise(torch.from_numpy(pixels), norm).permute(1, 2, 0).numpy()
        np.testing.assert_allclose(got, norm(pixels), rtol=0, atol=2e-6)
    # above MAX_STAT_PIXELS the percentiles come from the same regular subsample (here every 3rd row and column)
    monkeypatch.setattr("gains.intensity.MAX_STAT_PIXELS", 300)
    monkeypatch.setattr("gains.export.full.MAX_STAT_PIXELS", 300)
    got = full.normalise(torch.from_numpy(pixels), Normalisation()).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, Normalisation()(pixels), rtol=0, atol=2e-6)


def test_paste_is_the_predictors() -> None:
    rng = np.random.default_rng(0)
    h, w, k = 61, 77, 40
    maps = torch.from_numpy(rng.uniform(0, 1, (k, 1, 28, 28)).astype(np.float32))
    x0, y0 = rng.uniform(-3, w - 5, k), rng.uniform(-3, h - 5, k)
    sizes = rng.uniform(0.5, 60, (k, 2))
    boxes = torch.from_numpy(np.stack([x0, y0, x0 + sizes[:, 0], y0 + sizes[:, 1]], 1).astype(np.float32))
    boxes[:, 0::2], boxes[:, 1::2] = boxes[:, 0::2].clamp(0, w), boxes[:, 1::2].clamp(0, h)
    got = full.paste(maps, boxes, torch.tensor(h), torch.tensor(w)).numpy()
    for i in range(k):
        want = np.zeros((h, w), np.float32)
        py0, px0, canvas = _paste_one(maps[i], boxes[i], h, w)
        want[py0 : py0 + canvas.shape[0], px0 : px0 + canvas.shape[1]] = canvas
        np.testing.assert_allclose(got[i], want, rtol=0, atol=1e-5)
        assert np.array_equal(got[i] >= 0.5, want >= 0.5)


@pytest.fixture(scope="module")
def host_run(checkpoint: Path, tmp_path_factory) -> SimpleNamespace:
    """The full ONNX export and ``gains predict --tile 0`` of one 240 x 216 image (2.5 x the 96 px test size),
    every detection kept, and the export's outputs from onnxruntime in a process without gains or torch."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("host")
    pixels = _discs(240, 216, 40, seed=5)
    Image.fromarray(pixels).save(folder / "cells.png")
    np.save(folder / "cells.npy", pixels)
    model = folder / "tiny.onnx"
    assert main(["export-model", str(checkpoint), "--to", "onnx", "--full", "--out", str(model),
                 "--set", "eval.score_thresh=0.0"]) == 0
    assert main(["predict", str(checkpoint), str(folder / "cells.png"), "--tile", "0", "--score-thresh", "0",
                 "--format", "coco", "--out", str(folder / "pred"), "--quiet"]) == 0
    proc = subprocess.run([sys.executable, "-c", HOST, str(model), str(folder / "cells.npy"), str(folder / "out.npz")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    results = json.loads((folder / "pred" / "results.json").read_text())
    return SimpleNamespace(out=dict(np.load(folder / "out.npz")), results=results, report=report, pixels=pixels)


@pytest.mark.slow
def test_onnxruntime_alone_matches_predict(host_run: SimpleNamespace) -> None:
    from pycocotools import mask as mask_utils

    assert host_run.report["loaded"] == []
    out, results = host_run.out, sorted(host_run.results, key=lambda r: -r["score"])
    h, w = host_run.pixels.shape
    # limits scaled with the network image (312 x 281 px): 33 detections, where the fixed limit allows 20
    assert len(results) == 33 > TINY_MODEL["detections_per_img"]
    assert out["scores"].shape == (33,) and out["masks"].shape == (33, h, w) and out["label_image"].shape == (h, w)
    assert out["masks"].dtype == np.uint8 and out["label_image"].dtype == np.int32
    np.testing.assert_allclose(out["scores"], [r["score"] for r in results], rtol=0, atol=1e-3)
    # each predicted instance is the exported one of best mask IoU, one to one (scores a few 1e-6 apart may swap
    # places), with IoU >= 0.95, the same category and a score within 1e-3
    label_to_id = {c["label"]: c["id"] for c in CATEGORIES}
    masks = out["masks"].reshape(len(results), -1).astype(bool)
    want = np.stack([mask_utils.decode(r["segmentation"]).ravel().astype(bool) for r in results])
    iou = (want[:, None] & masks[None]).sum(-1) / (want[:, None] | masks[None]).sum(-1)
    best = iou.argmax(1)
    assert sorted(best) == list(range(len(results))) and iou[np.arange(len(results)), best].min() >= 0.95
    for r, k in zip(results, best, strict=True):
        assert label_to_id[int(out["labels"][k])] == r["category_id"] and abs(out["scores"][k] - r["score"]) <= 1e-3
    # boxes in image pixels: each mask lies within its box, widened by a pixel and the paste's margin
    for box, mask in zip(out["boxes"], out["masks"].astype(bool), strict=True):
        ys, xs = np.nonzero(mask)
        margin = 1 + (box[2:] - box[:2]) / 28
        assert xs.min() >= box[0] - margin[0] and xs.max() <= box[2] + margin[0]
        assert ys.min() >= box[1] - margin[1] and ys.max() <= box[3] + margin[1]
    # the label image: each pixel's first (highest-scoring) mask, 0 where none
    first = np.where(out["masks"].any(0), out["masks"].argmax(0) + 1, 0)
    assert np.array_equal(out["label_image"], first) and (out["masks"].sum(0) > 1).any()


@pytest.mark.slow
def test_the_metadata_travels_in_the_file(host_run: SimpleNamespace) -> None:
    meta = {k: json.loads(v) for k, v in host_run.report["meta"].items()}
    assert meta["categories"] == CATEGORIES and meta["full"] is True and meta["format"] == "onnx"
    assert meta["input"]["test_scale"] == 1.3 and meta["input"]["shape"] == ["H", "W", "C"]
    assert meta["input"]["intensity"] == {**meta["input"]["intensity"], "mode": "percentile",
                                          "percentiles": [1.0, 99.8]}
    assert list(meta["outputs"]) == full.OUTPUT_NAMES and meta["score_thresh"] == 0.0 and meta["mask_thresh"] == 0.5
    assert all(v <= full.TOLERANCE[k] for k, v in meta["check"]["max_abs_diff"].items())


@pytest.mark.parametrize("case", ["torchscript", "dtype"])
def test_full_refuses_in_one_line(case: str, checkpoint: Path, tmp_path: Path, capsys) -> None:
    to, extra = ("torchscript", []) if case == "torchscript" else ("onnx", ["--set", "model.input_norm=dtype"])
    assert main(["export-model", str(checkpoint), "--to", to, "--full", "--out", str(tmp_path / "m"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("ONNX only" if case == "torchscript" else "model.input_norm=fixed") in err[0]
    assert not list(tmp_path.iterdir())
