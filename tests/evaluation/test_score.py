"""gains score end to end: perfect and partial predictions, pycocotools cross-check, bad results files."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from gains.cli import main
from gains.errors import InputError
from gains.evaluation.score import score


def results_from_gt(gt: Path, drop: int = 0, shift: int = 0) -> list[dict]:
    """Predictions = ground-truth masks (optionally some dropped / shifted right), scores descending."""
    doc = json.loads(gt.read_text())
    sizes = {im["id"]: (im["height"], im["width"]) for im in doc["images"]}
    out = []
    for k, a in enumerate(doc["annotations"][drop:]):
        h, w = sizes[a["image_id"]]
        seg = a["segmentation"]
        if isinstance(seg, dict):
            rle = {"size": seg["size"], "counts": seg["counts"].encode()}
        else:
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        m = mask_utils.decode(rle)
        m = np.roll(m, shift, axis=1)
        enc = mask_utils.encode(np.asfortranarray(m))
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9 - 0.01 * k,
                    "segmentation": {"size": [h, w], "counts": enc["counts"].decode()}})
    return out


def test_perfect_predictions_score_one(small_coco: Path, tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps(results_from_gt(small_coco)))
    metrics, rows = score(small_coco, tmp_path / "r.json")
    for key in ("segm/AP", "aji_gains", "aji", "aji_plus", "pq", "f1_50", "dsb_score"):
        assert metrics[key] == pytest.approx(1.0), key
    assert set(metrics["per_category"]) == {"cell", "nucleus"}
    assert len(rows) == 3  # image 1: cell + nucleus; image 2: cell


def test_segm_ap_matches_plain_pycocotools(small_coco: Path, tmp_path: Path) -> None:
    from gains.data.normalise import convert_coco

    small_coco = convert_coco(small_coco, small_coco.parent / "images", tmp_path / "canon")  # has area, bbox
    res = results_from_gt(small_coco, drop=1, shift=2)
    (tmp_path / "r.json").write_text(json.dumps(res))
    metrics, _ = score(small_coco, tmp_path / "r.json", max_dets=100)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(small_coco))
        ev = COCOeval(gt, gt.loadRes(str(tmp_path / "r.json")), "segm")
        per_cat = []
        for cat in (1, 2):
            ev.params.catIds = [cat]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            per_cat.append(max(ev.stats[0], 0.0))
    assert metrics["segm/AP"] == pytest.approx(np.mean(per_cat), abs=1e-9)
    assert 0 < metrics["segm/AP"] < 1 and 0 < metrics["aji_gains"] < 1


def test_image_with_only_predictions_scores_zero(small_coco: Path, tmp_path: Path) -> None:
    res = results_from_gt(small_coco)
    nucleus = next(r for r in res if r["category_id"] == 2)
    res.append({**nucleus, "image_id": 2})  # a nucleus predicted where there is none
    (tmp_path / "r.json").write_text(json.dumps(res))
    metrics, rows = score(small_coco, tmp_path / "r.json")
    row = next(r for r in rows if r["image_id"] == 2 and r["category"] == "nucleus")
    assert row["aji"] == 0.0 and row["n_gt"] == 0
    assert metrics["per_category"]["nucleus"]["aji"] == pytest.approx(0.5)


@pytest.mark.parametrize(("change", "message"), [
    ({"image_id": 99}, "image_id 99 is not in the ground truth"),
    ({"category_id": 5}, "category_id 5 is not in the ground truth"),
    ({"score": float("nan")}, "score must be a finite number"),
    ({"segmentation": {"size": [10, 10], "counts": "0"}}, "mask size [10, 10] differs"),
])
def test_bad_results_are_refused(change: dict, message: str, small_coco: Path, tmp_path: Path, capsys) -> None:
    res = results_from_gt(small_coco)
    res[1].update(change)
    (tmp_path / "r.json").write_text(json.dumps(res).replace("NaN", "NaN"))
    with pytest.raises(InputError, match="result 1: " + message.replace("[", r"\[").replace("]", r"\]")):
        score(small_coco, tmp_path / "r.json")
    code = main(["score", str(small_coco), str(tmp_path / "r.json"), "--out", str(tmp_path / "m.json")])
    assert code == 2 and not (tmp_path / "m.json").exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cli_writes_metrics_and_csv(small_coco: Path, tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps(results_from_gt(small_coco, drop=1)))
    assert main(["score", str(small_coco), str(tmp_path / "r.json"), "--out", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"segm/AP", "segm/AP50", "segm/AP75", "bbox/AP", "aji_gains", "aji", "aji_plus", "pq", "f1_50",
            "dsb_score", "per_category"} <= set(metrics)
    lines = (tmp_path / "m_per_image.csv").read_text().splitlines()
    assert lines[0].startswith("image_id,file_name,category,n_gt,n_pred,aji_gains") and len(lines) == 4


def test_rle_areas_of_long_lists() -> None:
    """pycocotools' area() overflows beyond 255 RLEs under numpy 2; ours does not."""
    from gains.evaluation.score import rle_areas

    m = np.zeros((20, 30), dtype=np.uint8)
    m[2:5, 3:7] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    areas = rle_areas([rle] * 300)
    assert areas.shape == (300,) and (areas == 12).all()


def test_max_dets_really_caps_detections(small_coco: Path, tmp_path: Path) -> None:
    """With max_dets != 100 the AP is still computed (pycocotools' summarize would say -1)."""
    from gains.evaluation.coco import coco_ap

    res = results_from_gt(small_coco)
    for max_dets in (1, 3, 500):
        ap = coco_ap(small_coco, res, "segm", max_dets, [1])["AP"]
        assert ap == pytest.approx(1.0) if max_dets >= 3 else ap < 1.0  # image 1 holds 3 cells
