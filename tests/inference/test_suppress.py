"""Crossing-aware suppression: mask NMS keeps crossing objects box NMS loses, containment drops nested duplicates."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import nms

from gains.cli import main
from gains.core.masks import Instance, tight_crop
from gains.errors import InputError
from gains.inference.predictor import PredictOptions
from gains.inference.suppress import MASK_NMS_BOX_THRESH, NMS_MODES, box_nms_for, drop_contained, mask_nms


def inst(mask: np.ndarray, score: float, category: int = 1) -> Instance:
    crop = tight_crop(mask)
    assert crop is not None
    return Instance(category, score, crop)


def square(y0: int, x0: int, side: int, size: int = 64) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[y0 : y0 + side, x0 : x0 + side] = True
    return m


def crossing_rods(size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """An X: two 3 px wide diagonal rods over the same 48 x 48 box."""
    yy, xx = np.mgrid[0:size, 0:size]
    return np.abs(yy - xx) <= 1, np.abs(yy + xx - (size - 1)) <= 1


def box_iou(a: Instance, b: Instance) -> float:
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.box, b.box
    inter = max(min(ax1, bx1) - max(ax0, bx0), 0) * max(min(ay1, by1) - max(ay0, by0), 0)
    return inter / ((ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter)


def test_crossing_rods_survive_mask_nms_but_not_box_nms() -> None:
    a, b = crossing_rods()
    rods = [inst(a, 0.9), inst(b, 0.8)]
    assert box_iou(*rods) == 1.0  # one box: torchvision's box NMS at 0.5 keeps the first only
    boxes = torch.tensor([r.box for r in rods], dtype=torch.float32)
    assert nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]
    shared = int((a & b).sum())  # the crossing: 48*3-2 = 142 px each, the centre 2x2..3x3 in common
    assert 0 < shared < 10
    kept = mask_nms(rods, 0.5)
    assert [k is r for k, r in zip(kept, rods, strict=True)] == [True, True]
    assert mask_nms([rods[0], inst(a, 0.7)], 0.5) == [rods[0]]  # the same rod twice: the lower-scored goes


def test_mask_nms_is_greedy_by_score_and_keeps_order_and_scores() -> None:
    # squares of 100 px shifted by 5 columns: IoU 50 / 150 = 1/3 between neighbours, 0 between first and third
    a, b, c = inst(square(10, 10, 10), 0.9), inst(square(10, 15, 10), 0.8), inst(square(10, 20, 10), 0.7)
    assert mask_nms([c, a, b], 0.3) == [c, a]  # b goes (1/3 > 0.3 with a); c stays: b was not kept
    assert mask_nms([c, a, b], 0.34) == [c, a, b]
    assert [i.score for i in mask_nms([c, a, b], 0.3)] == [0.7, 0.9]
    other = Instance(2, 0.5, b.mask)  # another category is never a duplicate
    assert mask_nms([a, other], 0.3) == [a, other]
    assert mask_nms([], 0.5) == []


def test_drop_contained_drops_nested_duplicates_only() -> None:
    big, nested = inst(square(10, 10, 20), 0.9), inst(square(12, 12, 10), 0.6)  # all 100 px inside
    assert drop_contained([nested, big], 0.8) == [big]
    part = inst(square(8, 12, 10), 0.6)  # rows 8..17: 80 of its 100 px inside the big one
    assert drop_contained([big, part], 0.8) == [big]
    assert drop_contained([big, part], 0.81) == [big, part]
    higher = inst(square(12, 12, 10), 0.95)  # the nested one scored higher: the big one is not inside it
    assert drop_contained([big, higher], 0.8) == [big, higher]
    nucleus = Instance(2, 0.6, nested.mask)  # a nucleus inside its cell is no duplicate
    assert drop_contained([big, nucleus], 0.8) == [big, nucleus]


def test_box_nms_is_loosened_only_for_mask_nms_and_restored() -> None:
    model = SimpleNamespace(roi_heads=SimpleNamespace(nms_thresh=0.5))
    with box_nms_for(model, "mask") as own:
        assert (own, model.roi_heads.nms_thresh) == (0.5, MASK_NMS_BOX_THRESH)
    assert model.roi_heads.nms_thresh == 0.5
    with box_nms_for(model, "box") as own:
        assert (own, model.roi_heads.nms_thresh) == (0.5, 0.5)
    with pytest.raises(RuntimeError), box_nms_for(model, "mask"):
        raise RuntimeError
    assert model.roi_heads.nms_thresh == 0.5


def test_bad_options_are_one_line_input_errors() -> None:
    for bad in ({"nms": "masks"}, {"contained": 0.0}, {"contained": 1.5}):
        with pytest.raises(InputError, match="prediction options"):
            PredictOptions(**bad)
    assert main(["predict", "x", "y", "--out", "z", "--drop-contained", "2"]) == 2
    from gains.cli import build_parser

    for command in ("predict", "eval"):  # the parser names the modes without importing the suppression module
        sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
        assert tuple(next(a for a in sub._actions if a.dest == "nms").choices) == NMS_MODES


def reference_suppression(results: list[dict], iou: float, fraction: float) -> list[dict]:
    """The two rules written plainly on full-size masks decoded from COCO results: greedy by score, mask NMS
    first, then containment among the survivors (one image, one category)."""
    from pycocotools import mask as mask_utils

    ranked = sorted(results, key=lambda r: -r["score"])
    masks = [mask_utils.decode(r["segmentation"]).astype(bool) for r in ranked]
    kept: list[int] = []
    for k, m in enumerate(masks):
        if all((m & masks[o]).sum() / (m | masks[o]).sum() <= iou for o in kept):
            kept.append(k)
    final: list[int] = []
    for k in kept:
        if all((masks[k] & masks[o]).sum() < fraction * masks[k].sum() for o in final):
            final.append(k)
    return [ranked[k] for k in final]


@pytest.mark.slow
def test_predict_and_eval_with_mask_nms_end_to_end(tiny_run: Path, tmp_path: Path, monkeypatch) -> None:
    from gains.models.roi_heads import GainsRoIHeads

    seen: list[float] = []
    real = GainsRoIHeads.postprocess_detections
    monkeypatch.setattr(GainsRoIHeads, "postprocess_detections",
                        lambda self, *a: seen.append(self.nms_thresh) or real(self, *a))
    Image.open(sorted((tiny_run / "data" / "val" / "images").glob("*.png"))[0]).save(tmp_path / "scene.png")
    common = [str(tiny_run), str(tmp_path / "scene.png"), "--format", "coco", "--score-thresh", "0", "--device",
              "cpu", "--quiet", "--set", "model.detections_per_img=100"]  # the tiny run's 20 is reached
    assert main(["predict", *common, "--out", str(tmp_path / "box")]) == 0
    assert seen == [0.5]  # the tiny run's model.box_nms_thresh
    # the tiny model's masks barely overlap (mask IoU <= 0.13, containment <= 0.33): low thresholds make both
    # rules act; mask NMS takes the model's own box_nms_thresh (0.1 here) while its box NMS runs at 0.9
    assert main(["predict", *common, "--out", str(tmp_path / "mask"), "--nms", "mask", "--drop-contained", "0.3",
                 "--set", "model.box_nms_thresh=0.1"]) == 0
    assert seen == [0.5, MASK_NMS_BOX_THRESH]
    # the same box NMS at 0.9 with no suppression of ours, then the rules applied by hand to what it wrote
    assert main(["predict", *common, "--out", str(tmp_path / "loose"), "--set",
                 f"model.box_nms_thresh={MASK_NMS_BOX_THRESH}"]) == 0
    loose = json.loads((tmp_path / "loose" / "results.json").read_text())
    found = json.loads((tmp_path / "mask" / "results.json").read_text())
    assert {r["category_id"] for r in loose} == {1} and 0 < len(found) < len(loose)
    expected = reference_suppression(loose, 0.1, 0.3)
    assert [(r["score"], r["segmentation"]) for r in found] == [(r["score"], r["segmentation"]) for r in expected]
    assert len(reference_suppression(loose, 0.1, 1.0)) > len(expected)  # containment dropped some of its own
    data = tiny_run / "data" / "val"
    assert main(["eval", str(tiny_run), "--data", str(data), "--split", "all", "--out", str(tmp_path / "ev"),
                 "--device", "cpu", "--quiet", "--nms", "mask", "--drop-contained", "0.8"]) == 0
    metrics = json.loads((tmp_path / "ev" / "METRICS.json").read_text())
    assert metrics["suppression"] == {"nms": "mask", "drop_contained": 0.8}


@pytest.mark.slow
def test_the_suppression_benchmark_writes_every_arm(tiny_run: Path, tmp_path: Path) -> None:
    from benchmarks.accuracy import suppression

    out = tmp_path / "bench"
    assert suppression.main([str(tiny_run), "--data", str(tiny_run / "data" / "val"), "--split", "all", "--out",
                             str(out), "--contained", "0.5"]) == 0
    doc = json.loads((out / "suppression.json").read_text())
    assert [(a["nms"], a["drop_contained"]) for a in doc["arms"]] == [("box", None), ("box", 0.5), ("mask", None),
                                                                      ("mask", 0.5)]
    for arm in doc["arms"]:
        assert set(suppression.METRICS) <= set(arm) and arm["predict_seconds"] <= arm["eval_seconds"]
        written = json.loads((out / suppression.arm_name(arm["nms"], arm["drop_contained"]) / "METRICS.json")
                             .read_text())
        assert written["suppression"] == {"nms": arm["nms"], "drop_contained": arm["drop_contained"]}
        assert arm["segm/AP"] == written["segm/AP"]
