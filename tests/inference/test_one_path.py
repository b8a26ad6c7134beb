"""One prediction path: ``gains eval`` scores exactly what ``gains predict`` writes (tiles included), and every
caller that predicts with a checkpoint goes through ``Predictor.from_checkpoint``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gains.cli import main
from gains.core.coco import load_coco, result_entry
from gains.core.masks import MaskCrop, segmentation_to_crop
from gains.inference.predictor import PredictOptions, Predictor

TILE = ["--tile", "128", "--overlap", "32"]  # network px = image px for the tiny model (scale 1): 3 x 3 tiles


def mosaic_dataset(run: Path, folder: Path) -> Path:
    """A canonical dataset of the run's two 96 px val scenes: a 3 x 3 mosaic of them (288 px, id 1, tiled at
    ``TILE``) and the first scene alone (id 2); returns its annotations.json."""
    coco = load_coco(run / "data" / "val" / "annotations.json")
    scenes = [np.asarray(Image.open(coco.path.parent / "images" / im.file_name)) for im in coco.images]
    size = scenes[0].shape[0]
    (folder / "images").mkdir(parents=True)
    mosaic = np.concatenate([np.concatenate([scenes[(r + c) % 2] for c in range(3)], axis=1) for r in range(3)])
    Image.fromarray(mosaic).save(folder / "images" / "mosaic.png")
    Image.fromarray(scenes[0]).save(folder / "images" / "scene.png")
    anns = []
    for r in range(3):
        for c in range(3):
            image = coco.images[(r + c) % 2]
            for a in coco.anns_by_image[image.id]:
                crop = segmentation_to_crop(a["segmentation"], size, size)
                moved = MaskCrop(crop.y0 + r * size, crop.x0 + c * size, crop.mask)
                anns.append({**result_entry(moved, 1, a["category_id"], 1.0, 3 * size, 3 * size), "area": crop.area})
    for a in coco.anns_by_image[coco.images[0].id]:
        anns.append({**a, "image_id": 2})
    for k, a in enumerate(anns, start=1):
        a.pop("score", None)
        a.update(id=k, iscrowd=0)
    doc = {"images": [{"id": 1, "file_name": "mosaic.png", "height": 3 * size, "width": 3 * size},
                      {"id": 2, "file_name": "scene.png", "height": size, "width": size}],
           "annotations": anns, "categories": coco.categories}
    path = folder / "annotations.json"
    path.write_text(json.dumps(doc))
    return path


def test_eval_scores_what_predict_writes_on_a_tiled_image(tiny_run: Path, tmp_path: Path, monkeypatch) -> None:
    gt = mosaic_dataset(tiny_run, tmp_path / "ds")
    runs = []
    real_run = Predictor._run
    monkeypatch.setattr(Predictor, "_run", lambda self, *a: runs.append(1) or real_run(self, *a))
    assert main(["eval", str(tiny_run), "--data", str(gt), "--out", str(tmp_path / "ev"), *TILE,
                 "--device", "cpu"]) == 0
    assert len(runs) == 9 + 1  # the mosaic in 3 x 3 tiles, the scene whole
    images = [str(gt.parent / "images" / name) for name in ("mosaic.png", "scene.png")]  # image ids 1, 2 as in gt
    assert main(["predict", str(tiny_run), *images, "--out", str(tmp_path / "pr"), "--format", "coco", *TILE,
                 "--score-thresh", "0", "--device", "cpu", "--quiet"]) == 0
    evaluated = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert evaluated == json.loads((tmp_path / "pr" / "results.json").read_text())
    assert {r["image_id"] for r in evaluated} == {1, 2}
    assert main(["score", str(gt), str(tmp_path / "pr" / "results.json"), "--out", str(tmp_path / "sc" / "M.json"),
                 "--score-thresh", "0.5", "--max-dets", "100"]) == 0  # the tiny run's eval settings
    scored = json.loads((tmp_path / "sc" / "M.json").read_text())
    metrics = json.loads((tmp_path / "ev" / "METRICS.json").read_text())
    assert metrics.pop("scale_note").startswith("scale 1")
    assert metrics.pop("suppression") == {"nms": "box", "drop_contained": None}
    assert metrics == scored


def test_every_caller_predicts_through_from_checkpoint(tiny_run: Path, tmp_path: Path, monkeypatch) -> None:
    from gains.napari.segment import segment
    from gains.report import build_report

    calls: list[tuple[str, PredictOptions]] = []
    real = Predictor.from_checkpoint.__func__

    def spy(cls, spec, options=None, **kw):
        calls.append((str(spec), options))
        return real(cls, spec, options, **kw)

    monkeypatch.setattr(Predictor, "from_checkpoint", classmethod(spy))
    val = tiny_run / "data" / "val"
    assert main(["eval", str(tiny_run), "--data", str(val), "--split", "all", "--out", str(tmp_path / "ev"),
                 "--tile", "64", "--overlap", "16", "--tile-merge", "union", "--device", "cpu"]) == 0
    assert calls[-1] == (str(tiny_run), PredictOptions(tile=64, overlap=16, merge="union", score_thresh=0.0,
                                                       device="cpu"))
    image = next((val / "images").iterdir())
    assert main(["predict", str(tiny_run), str(image), "--out", str(tmp_path / "pr"), "--score-thresh", "0.3",
                 "--device", "cpu", "--quiet"]) == 0
    assert calls[-1] == (str(tiny_run), PredictOptions(score_thresh=0.3, device="cpu"))
    gen = segment(str(tiny_run), np.asarray(Image.open(image)), "img", score_thresh=0.2, device="cpu")
    with pytest.raises(StopIteration):
        while True:
            next(gen)
    assert calls[-1] == (str(tiny_run), PredictOptions(score_thresh=0.2, device="cpu"))
    build_report(tiny_run, tmp_path / "r.html", n_images=1)
    assert calls[-1] == (str(tiny_run), PredictOptions(device="cpu"))
    assert len(calls) == 4
