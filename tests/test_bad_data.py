"""Hostile or careless data in annotation, results and JSON files (issue 36, items 5, 6 and 8).

Every case ends in one ``gains CMD: error: FILE: ...`` line, exit 2 and nothing written; memory cases run
under an address-space limit so that an unbounded allocation fails fast instead of eating the machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from gains.cli import main
from tests.conftest import disc_polygon, write_coco

LIMIT = 4 << 30  # bytes of address space for the subprocess cases (torch alone maps about 1.5 GiB)


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def run_limited(*args: str) -> subprocess.CompletedProcess:
    """``python -m gains ARGS`` under ``LIMIT`` bytes of address space, two minutes at most."""
    return subprocess.run([sys.executable, "-m", "gains", *args], capture_output=True, text=True,
                          preexec_fn=_limited, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})


def one_line(err: str, *parts: str) -> str:
    """The single stderr line, checked to hold every part."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-2000:]
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def gt_with(tmp_path: Path, segmentation, **extra) -> Path:
    """A two-image ground truth whose annotation 2 (image 1) has ``segmentation`` (and ``extra`` keys)."""
    anns = [{"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(30, 30, 10)]},
            {"image_id": 1, "category_id": 1, "segmentation": segmentation, **extra},
            {"image_id": 2, "category_id": 1, "segmentation": [disc_polygon(30, 40, 12)]}]
    return write_coco(tmp_path / "ds", [("a.png", 64, 80), ("b.png", 64, 80)], anns)


def rle_results(gt: Path) -> list[dict]:
    """Every ground-truth mask as a result (compressed RLE), scores descending."""
    doc = json.loads(gt.read_text())
    out = []
    for k, a in enumerate(doc["annotations"]):
        rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], 64, 80))
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9 - 0.1 * k,
                    "segmentation": {"size": [64, 80], "counts": rle["counts"].decode()}})
    return out


NAN_POLY = [[10, 10, 30, 10, float("nan"), 30, 10, 30]]
BAD_SEGMENTATIONS = {
    "nan polygon": (NAN_POLY, "non-finite polygon coordinate"),
    "inf polygon": ([[10, 10, 30, 10, float("inf"), 30]], "non-finite polygon coordinate"),
    "far polygon": ([[10, 10, 1e9, 10, 30, 1e9]], "lies more than 320 px outside"),
    "string coordinates": ([["10", "10", "30", "10", "30", "30"]], "coordinate '10' is not a number"),
    "bool coordinates": ([[True, 10, 30, 10, 30, 30]], "coordinate True is not a number"),
    "negative rle counts": ({"size": [64, 80], "counts": [-10, 64 * 80 + 10]}, "non-negative integers"),
}


@pytest.mark.parametrize("case", list(BAD_SEGMENTATIONS))
def test_score_refuses_a_bad_ground_truth_segmentation(case: str, tmp_path: Path) -> None:
    seg, why = BAD_SEGMENTATIONS[case]
    gt = gt_with(tmp_path, seg)
    results = tmp_path / "r.json"
    results.write_text(json.dumps(rle_results(gt_with(tmp_path / "clean", [disc_polygon(20, 20, 5)]))))
    proc = run_limited("score", str(gt), str(results), "--out", str(tmp_path / "m.json"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    one_line(proc.stderr, "gains score: error: ", f"{gt}: annotation 2 (image 1): ", why)
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("case", list(BAD_SEGMENTATIONS))
def test_score_refuses_a_bad_result_segmentation(case: str, tmp_path: Path) -> None:
    seg, why = BAD_SEGMENTATIONS[case]
    gt = gt_with(tmp_path, [disc_polygon(20, 20, 5)])
    res = rle_results(gt)
    res[1]["segmentation"] = seg
    (tmp_path / "r.json").write_text(json.dumps(res))
    proc = run_limited("score", str(gt), str(tmp_path / "r.json"), "--out", str(tmp_path / "m.json"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    one_line(proc.stderr, f"{tmp_path / 'r.json'}: result 1: ", why)
    assert not (tmp_path / "m.json").exists()


def test_score_refuses_a_nan_result_bbox(tmp_path: Path, capsys) -> None:
    gt = gt_with(tmp_path, [disc_polygon(20, 20, 5)])
    res = rle_results(gt)
    res[2]["bbox"] = [1.0, float("nan"), 3.0, 4.0]
    (tmp_path / "r.json").write_text(json.dumps(res))
    assert main(["score", str(gt), str(tmp_path / "r.json"), "--out", str(tmp_path / "m.json")]) == 2
    one_line(capsys.readouterr().err, f"{tmp_path / 'r.json'}: result 2: bbox must be four finite numbers")
    assert not (tmp_path / "m.json").exists()


def test_polygon_results_score_like_the_same_masks_as_rle(tmp_path: Path) -> None:
    from gains.evaluation.score import score

    gt = gt_with(tmp_path, [disc_polygon(22, 50, 8)])
    doc = json.loads(gt.read_text())
    polys = [{"image_id": a["image_id"], "category_id": 1, "score": 0.9 - 0.1 * k,
              "segmentation": [(np.asarray(a["segmentation"][0]) + 1.5).tolist()]}  # shifted: AP < 1
             for k, a in enumerate(doc["annotations"])]
    rles = [{**p, "segmentation": {"size": [64, 80], "counts": mask_utils.merge(
        mask_utils.frPyObjects(p["segmentation"], 64, 80))["counts"].decode()}} for p in polys]
    (tmp_path / "poly.json").write_text(json.dumps(polys))
    (tmp_path / "rle.json").write_text(json.dumps(rles))
    by_poly, rows_poly = score(gt, tmp_path / "poly.json")
    by_rle, rows_rle = score(gt, tmp_path / "rle.json")
    assert json.dumps([by_poly, rows_poly]) == json.dumps([by_rle, rows_rle])  # NaN contact metrics included
    assert 0 < by_poly["segm/AP"] < 1


@pytest.mark.parametrize("case", ["nan polygon", "string coordinates", "negative rle counts", "huge id"])
def test_stats_refuses_bad_annotations_in_one_line(case: str, tmp_path: Path, capsys) -> None:
    if case == "huge id":
        gt = gt_with(tmp_path, [disc_polygon(20, 20, 5)], id=10**30)
        where, why = f"{gt}: annotation {10**30}: ", "'id' 1000000000000000000000000000000 does not fit a 64-bit"
    else:
        seg, why = BAD_SEGMENTATIONS[case]
        gt = gt_with(tmp_path, seg)
        where = f"{gt}: annotation 2 (image 1): "
    assert main(["stats", str(gt), "--json", str(tmp_path / "s.json")]) == 2
    one_line(capsys.readouterr().err, "gains stats: error: ", where, why)
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize(("bbox", "why"), [
    ([5.0, float("nan"), 10.0, 10.0], "bbox must be four finite numbers"),
    ([5.0, 5.0, 1e12, 10.0], "bbox coordinate 1000000000005.0 lies more than 320 px outside"),
    ([5.0, 5.0, -3.0, 10.0], "bbox width and height must be >= 0"),
    (["5", 5, 10, 10], "bbox must be four finite numbers"),
])
def test_gamm_nuclei_refuses_a_bad_bbox(bbox: list, why: str, tmp_path: Path, capsys) -> None:
    gt = gt_with(tmp_path, [disc_polygon(20, 20, 5)], bbox=bbox)
    out = tmp_path / "store"
    assert main(["gamm", str(gt), "--images", str(gt.parent / "images"), "--variant", "nuclei",
                 "--out", str(out), "--quiet"]) == 2
    one_line(capsys.readouterr().err, "gains gamm: error: ", f"{gt}: annotation 2 (image 1): ", why)
    assert not out.exists()


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("which", ["ground truth", "results"])
def test_json_nested_too_deep_is_one_line(which: str, tmp_path: Path, capsys) -> None:
    gt = gt_with(tmp_path, [disc_polygon(20, 20, 5)])
    results = tmp_path / "r.json"
    results.write_text(json.dumps(rle_results(gt)))
    bad = gt if which == "ground truth" else results
    bad.write_text(_nested(200_000))
    assert main(["score", str(gt), str(results), "--out", str(tmp_path / "m.json")]) == 2
    one_line(capsys.readouterr().err, f"{bad}: not valid JSON (nested too deeply)")
    assert not (tmp_path / "m.json").exists()


def test_json_helper_turns_every_decode_failure_into_one_line(tmp_path: Path) -> None:
    from gains.errors import InputError
    from gains.jsonfile import read_json, read_json_lines

    cases = {"deep.json": _nested(100_000).encode(), "latin1.json": b'{"a": "\xe9"}', "cut.json": b'{"a": [1, 2',
             "long_int.json": b"1" * 5000}
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(InputError, match=rf"{name}: not valid JSON \("):
            read_json(tmp_path / name)
    (tmp_path / "m.jsonl").write_text('{"iter": 0}\n\n[1]\n')
    with pytest.raises(InputError, match=r"m\.jsonl: line 3: expected a JSON object, got list"):
        read_json_lines(tmp_path / "m.jsonl")


def test_report_names_the_bad_metrics_line(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("{}\n")
    (run / "metrics.jsonl").write_text('{"iter": 0, "loss": 1.0}\n{"iter": 1, "loss": 0.9\n')
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 2
    one_line(capsys.readouterr().err, "gains report: error: ", f"{run / 'metrics.jsonl'}: line 2: not valid JSON")
    assert not (tmp_path / "r.html").exists()


def test_a_truncated_model_card_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from gains import zoo

    card = tmp_path / "models" / "broken" / "card.json"
    card.parent.mkdir(parents=True)
    card.write_text('{"name": "broken", "files": [{"name": "broken.pt.000", "sha')
    monkeypatch.setattr(zoo, "_root", lambda: tmp_path / "models")
    zoo.card.cache_clear()
    try:
        assert main(["models", "show", "broken"]) == 2
    finally:
        zoo.card.cache_clear()
    one_line(capsys.readouterr().err, "gains models: error: ", f"{card}: not valid JSON")


def test_predict_refuses_a_scale_whose_pixels_exceed_the_input_limit(tmp_path: Path) -> None:
    image = tmp_path / "small.png"
    Image.fromarray((np.random.default_rng(0).random((128, 128)) * 255).astype(np.uint8)).save(image)
    out = tmp_path / "out"
    proc = run_limited("predict", "nuclei", str(image), "--scale", "1000", "--out", str(out), "--quiet")
    assert proc.returncode == 2, proc.stderr[-2000:]
    one_line(proc.stderr, "gains predict: error: ", f"{image}: ", "at --scale 1000", "--max-input-gib")
    assert not out.exists()


def test_per_tile_detections_stop_growing_at_the_largest_training_image() -> None:
    from gains.inference.predictor import limits_for_area

    # the nuclei model's numbers: tested at 384 px, trained at short sides 320-416, long side <= 640
    model = SimpleNamespace(rpn=SimpleNamespace(_pre_nms_top_n={"testing": 1000}, _post_nms_top_n={"testing": 500}),
                            roi_heads=SimpleNamespace(detections_per_img=400),
                            transform=SimpleNamespace(test_size=384, min_size=(320, 352, 384, 416), max_size=640))
    cap = 416 * 640 / 384**2
    with limits_for_area(model, 1024, 1024) as detections:  # a default tile: 7.1x the test area
        assert detections == model.roi_heads.detections_per_img == round(400 * cap) == 722  # not 2,844
        assert model.rpn._pre_nms_top_n["testing"] == round(1000 * 1024**2 / 384**2)  # proposals: boxes, cheap
    with limits_for_area(model, 400, 500) as detections:  # below the cap: per unit area, as before
        assert detections == round(400 * 400 * 500 / 384**2)
    with limits_for_area(model, 100, 100) as detections:  # never below the model's own
        assert detections == 400 and model.rpn._post_nms_top_n["testing"] == 500
    assert (model.rpn._pre_nms_top_n["testing"], model.rpn._post_nms_top_n["testing"],
            model.roi_heads.detections_per_img) == (1000, 500, 400)


def test_eval_refuses_a_scale_whose_network_input_exceeds_the_limit(tiny_run: Path, tmp_path: Path, capsys) -> None:
    from gains.cli import main

    out = tmp_path / "ev"
    assert main(["eval", str(tiny_run), "--data", str(tiny_run / "data" / "val"), "--split", "all", "--device", "cpu",
                 "--scale", "1000", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "at scale 1000" in err[0] and "--scale" in err[0], err
    assert not out.exists()
