"""Tiling and seam merging, writers, and the eval/predict commands on a tiny trained checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from gains.cli import main
from gains.core.masks import tight_crop
from gains.errors import InputError
from gains.formats.ga import ga_image
from gains.formats.labels import label_layers
from gains.inference.predictor import Instance, Predictor, keep_central, merge_tiles


def disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.hypot(yy - cy, xx - cx) < r


def clip_to(mask: np.ndarray, tile: tuple[int, int, int, int]) -> np.ndarray:
    out = np.zeros_like(mask)
    y0, x0, y1, x1 = tile
    out[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
    return out


def test_merge_tiles_joins_seam_cut_objects_and_drops_duplicates() -> None:
    h, w = 100, 180
    left, right = (0, 0, 100, 100), (0, 80, 100, 180)  # overlap band: columns 80..99
    seam = disc(h, w, 50, 95, 20)  # crosses the band: each tile sees part of it
    dup = disc(h, w, 20, 90, 6)  # lies inside the band: both tiles see all of it
    lone = disc(h, w, 60, 30, 10)
    per_tile = [
        (left, [Instance(1, 0.9, tight_crop(clip_to(seam, left))), Instance(1, 0.8, tight_crop(dup)),
                Instance(1, 0.7, tight_crop(lone))]),
        (right, [Instance(1, 0.6, tight_crop(clip_to(seam, right))), Instance(1, 0.95, tight_crop(dup))]),
    ]
    merged = merge_tiles(per_tile)
    assert len(merged) == 3
    dense = {round(i.score, 2): i.mask.to_dense(h, w) for i in merged}
    np.testing.assert_array_equal(dense[0.9], seam)  # union of the two halves, best score
    np.testing.assert_array_equal(dense[0.95], dup)
    np.testing.assert_array_equal(dense[0.7], lone)


def test_keep_central_keeps_each_object_once_from_the_tile_whose_core_holds_it() -> None:
    h, w = 100, 180
    left, right = (0, 0, 100, 100), (0, 80, 100, 180)  # overlap 80..99: the cores split at column 90
    near_left = disc(h, w, 50, 84, 5)  # inside the band, centre left of 90: the left tile's
    near_right = disc(h, w, 20, 94, 5)  # inside the band, centre right of 90: the right tile's
    cut = disc(h, w, 80, 97, 6)  # cut by the left tile's edge (column 100); centre right of 90: whole from right
    per_tile = [
        (left, [Instance(1, 0.9, tight_crop(near_left)), Instance(1, 0.8, tight_crop(near_right)),
                Instance(1, 0.7, tight_crop(clip_to(cut, left)))]),
        (right, [Instance(1, 0.6, tight_crop(clip_to(near_left, right))), Instance(1, 0.85, tight_crop(near_right)),
                 Instance(1, 0.75, tight_crop(cut))]),
    ]
    kept = keep_central(per_tile)
    assert [round(i.score, 2) for i in kept] == [0.9, 0.85, 0.75]
    np.testing.assert_array_equal(kept[0].mask.to_dense(h, w), near_left)
    np.testing.assert_array_equal(kept[2].mask.to_dense(h, w), cut)  # the whole object, not the cut one
    # a 3 x 1 column of tiles: the middle one owns the rows between its two overlaps' middles
    tiles = [(0, 0, 60, 50), (40, 0, 100, 50), (80, 0, 140, 50)]
    obj = {y: Instance(1, 1.0 - y / 1000, tight_crop(disc(140, 50, y, 25, 3))) for y in (45, 55, 85, 95)}
    per_tile = [(t, [o for y, o in obj.items() if t[0] <= y - 3 and y + 3 <= t[2]]) for t in tiles]
    assert sorted(round(1000 * (1 - i.score)) for i in keep_central(per_tile)) == [45, 55, 85, 95]


def test_an_unknown_tile_merge_is_refused() -> None:
    with pytest.raises(ValueError, match="tile merge must be one of"):
        Predictor(torch.nn.Identity(), [], torch.device("cpu"), merge="nms")


def test_tiles_cover_the_image_flush_with_the_border() -> None:
    p = Predictor.__new__(Predictor)
    p.tile, p.overlap = 100, 20
    tiles = p.tiles(250, 130)
    covered = np.zeros((250, 130), dtype=bool)
    for y0, x0, y1, x1 in tiles:
        assert y1 - y0 == 100 and x1 - x0 == 100
        covered[y0:y1, x0:x1] = True
    assert covered.all() and max(t[2] for t in tiles) == 250 and max(t[3] for t in tiles) == 130


def test_label_layers_keep_overlapping_instances_apart() -> None:
    a, b, c = disc(40, 40, 15, 15, 8), disc(40, 40, 20, 20, 8), disc(40, 40, 32, 32, 5)
    insts = [Instance(1, s, tight_crop(m), np.full(tight_crop(m).mask.shape, g, np.float32))
             for s, m, g in ((0.9, a, 1.3), (0.8, b, 1.6), (0.7, c, 1.1))]
    layers = label_layers(insts, 40, 40)
    assert len(layers) == 2
    np.testing.assert_array_equal(layers[0] == 1, a)
    np.testing.assert_array_equal(layers[1] == 2, b)
    np.testing.assert_array_equal(layers[0] == 3, c)
    assert len(label_layers(insts[:1] + insts[2:], 40, 40)) == 1
    ga = ga_image(insts, 40, 40)
    assert ga[20, 20] == pytest.approx(1.6) and ga[0, 39] == 1.0


def test_predict_whole_and_tiled_write_every_format(tiny_run: Path, tmp_path: Path) -> None:
    img = (np.random.default_rng(0).random((300, 220)) * 60).astype(np.uint16) * 1000  # 16-bit input
    tifffile.imwrite(tmp_path / "big.tif", img)
    Image.fromarray(np.zeros((64, 80, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    code = main(["predict", str(tiny_run), str(tmp_path / "big.tif"), str(tmp_path / "small.png"), "--out",
                 str(tmp_path / "out"), "--format", "coco,labels,overlay,ga", "--tile", "128", "--overlap", "32",
                 "--score-thresh", "0.0", "--device", "cpu", "--quiet"])
    assert code == 0
    out = tmp_path / "out"
    images = json.loads((out / "images.json").read_text())["images"]
    assert [(im["height"], im["width"]) for im in images] == [(300, 220), (64, 80)]
    for r in json.loads((out / "results.json").read_text()):
        h, w = (300, 220) if r["image_id"] == 1 else (64, 80)
        assert mask_utils.decode({"size": r["segmentation"]["size"],
                                  "counts": r["segmentation"]["counts"].encode()}).shape == (h, w)
    labels = sorted(out.glob("big_labels*.tif"))
    assert labels and tifffile.imread(labels[0]).shape == (300, 220)
    with Image.open(out / "big_overlay.png") as im:
        assert im.size == (220, 300)


def test_eval_and_bad_checkpoints(tiny_run: Path, tmp_path: Path, capsys) -> None:
    data = tiny_run / "data" / "val"
    assert main(["eval", str(tiny_run), "--data", str(data), "--split", "all", "--out", str(tmp_path / "ev"),
                 "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "ev" / "METRICS.json").read_text())
    assert 0.0 <= metrics["segm/AP"] <= 1.0 and "aji_gains" in metrics
    assert (tmp_path / "ev" / "results.json").exists() and (tmp_path / "ev" / "METRICS_per_image.csv").exists()
    capsys.readouterr()
    broken = tmp_path / "broken.pt"
    broken.write_bytes((tiny_run / "last.pt").read_bytes()[:1000])
    assert main(["eval", str(broken), "--data", str(data), "--split", "all", "--out", str(tmp_path / "e2")]) == 2
    assert "unreadable or truncated checkpoint" in capsys.readouterr().err
    assert main(["eval", str(tiny_run), "--data", str(data), "--split", "all", "--out", str(tmp_path / "e3"),
                 "--set", "model.variant=maskrcnn"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint of a gains model, but the config asks for maskrcnn" in err[0]


def _predictions(run: Path, image: Path, out: Path) -> list[tuple[int, float]]:
    assert main(["predict", str(run), str(image), "--out", str(out), "--format", "coco", "--score-thresh", "0.0",
                 "--device", "cpu", "--quiet"]) == 0
    return [(r["category_id"], round(r["score"], 4)) for r in json.loads((out / "results.json").read_text())]


def test_normalisation_travels_in_the_checkpoint_and_predict_applies_it(tiny_run: Path, tmp_path: Path) -> None:
    from gains.engine.checkpoint import load_checkpoint, save_checkpoint
    from gains.inference.loading import load_model

    ckpt = load_checkpoint(tiny_run / "last.pt")
    assert ckpt["config"]["model"]["input_norm"] == "percentile"
    _, cfg, _ = load_model(tiny_run)
    assert cfg.model.input_norm == "percentile" and cfg.model.input_percentiles == [1.0, 99.8]
    rng = np.random.default_rng(4)
    twelve = (rng.random((96, 96)) * 3000 + 80).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a12.tif", twelve)
    tifffile.imwrite(tmp_path / "a16.tif", twelve * 16)  # the same picture with 16-bit values
    # percentile: the 12- and 16-bit versions are the same input, so the same predictions
    assert _predictions(tiny_run, tmp_path / "a12.tif", tmp_path / "p12") == \
        _predictions(tiny_run, tmp_path / "a16.tif", tmp_path / "p16")
    # a checkpoint saved before the setting existed is read as dtype, and predict then sees other inputs
    del ckpt["config"]["model"]["input_norm"]
    old = tmp_path / "old"
    old.mkdir()
    save_checkpoint(old / "last.pt", **ckpt)
    _, cfg_old, _ = load_model(old)
    assert cfg_old.model.input_norm == "dtype"
    assert _predictions(old, tmp_path / "a12.tif", tmp_path / "o12") != \
        _predictions(old, tmp_path / "a16.tif", tmp_path / "o16")


def test_non_finite_image_is_refused_and_nothing_is_written(tiny_run: Path, tmp_path: Path, capsys) -> None:
    img = np.ones((40, 40), dtype=np.float32)
    img[5, 5] = np.inf
    tifffile.imwrite(tmp_path / "bad.tif", img)
    assert main(["predict", str(tiny_run), str(tmp_path / "bad.tif"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.tif: 1 non-finite pixel" in err[0]
    assert not (tmp_path / "out").exists()


def _network_sizes(model) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    model.backbone.register_forward_pre_hook(lambda mod, args: sizes.append(tuple(args[0].shape[-2:])))
    return sizes


def test_the_scale_rule_is_the_same_whatever_the_image_size(tiny_run: Path, tmp_path: Path) -> None:
    import torch

    from gains.engine.checkpoint import load_checkpoint, save_checkpoint
    from gains.inference.loading import load_model, resolve_scale

    model, cfg, cats = load_model(tiny_run)
    assert cfg.model.test_scale == 1.0 and cfg.model.object_size > 5  # 96 px scenes, tested at 96 px
    sizes = _network_sizes(model)
    scene = (np.random.default_rng(5).random((96, 96)) * 255).astype(np.uint8)
    mosaic = np.tile(scene, (2, 2))
    Predictor(model, cats, torch.device("cpu"), tile=None).predict(mosaic)  # whole: at scale 1, not shrunk
    Predictor(model, cats, torch.device("cpu"), tile=96, overlap=16).predict(mosaic)  # tiles: the same scale
    assert sizes[0] == (192, 192) and set(sizes[1:]) == {(96, 96)} and len(sizes) == 1 + 9  # 3 x 3 tiles
    scale, note = resolve_scale(cfg.model, object_size=cfg.model.object_size / 2)
    assert scale == pytest.approx(2.0) and "brought to the" in note
    Predictor(model, cats, torch.device("cpu"), tile=1024, scale=scale).predict(scene)
    assert sizes[-1] == (192, 192)
    # a checkpoint from before the rule keeps its old behaviour: every image resized to min_size_test
    ckpt = load_checkpoint(tiny_run / "last.pt")
    ckpt["config"]["model"].pop("test_scale")
    ckpt["config"]["model"].pop("object_size")
    save_checkpoint(tmp_path / "old.pt", **ckpt)
    old, old_cfg, _ = load_model(tmp_path / "old.pt")
    old_sizes = _network_sizes(old)
    Predictor(old, cats, torch.device("cpu"), tile=None).predict(mosaic)
    assert old_sizes == [(96, 96)] and "resized to 96 px" in resolve_scale(old_cfg.model)[1]
    with pytest.raises(InputError, match="records no object size"):
        resolve_scale(old_cfg.model, object_size=10.0)
    with pytest.raises(InputError, match="not both"):
        resolve_scale(cfg.model, 2.0, 10.0)


def test_per_image_limits_follow_the_network_area_whole_or_tiled(tiny_run: Path) -> None:
    import torch

    from gains.inference.loading import load_model

    model, _, cats = load_model(tiny_run)  # tested at 96 px, scale 1
    rpn, heads = model.rpn, model.roi_heads
    base = (rpn._pre_nms_top_n["testing"], rpn._post_nms_top_n["testing"], heads.detections_per_img)
    seen: list[tuple[int, int, int]] = []
    model.backbone.register_forward_pre_hook(lambda mod, args: seen.append(
        (rpn._pre_nms_top_n["testing"], rpn._post_nms_top_n["testing"], heads.detections_per_img)))
    scene = (np.random.default_rng(5).random((96, 96)) * 255).astype(np.uint8)
    Predictor(model, cats, torch.device("cpu"), tile=None).predict(np.tile(scene, (2, 3)))  # 192 x 288: 6x the
    # test area; detections capped at the largest training image (96 x 128 network pixels: 4/3 of 96 x 96)
    Predictor(model, cats, torch.device("cpu"), tile=96, overlap=16).predict(np.tile(scene, (2, 2)))
    Predictor(model, cats, torch.device("cpu"), tile=None).predict(scene[:48])  # smaller: never below the model's
    assert seen[0] == (6 * base[0], 6 * base[1], round(base[2] * 4 / 3))
    assert set(seen[1:-1]) == {base} and len(seen) == 1 + 9 + 1
    assert seen[-1] == base
    assert (rpn._pre_nms_top_n["testing"], rpn._post_nms_top_n["testing"], heads.detections_per_img) == base


def test_training_scale_is_the_median_resize_and_object_diameter(tmp_path: Path) -> None:
    from gains.data.stats import training_scale

    def ann(k: int, image: int, diameter: float) -> dict:
        return {"id": k, "image_id": image, "category_id": 1, "bbox": [0, 0, 1, 1], "iscrowd": 0,
                "area": np.pi * (diameter / 2) ** 2, "segmentation": [[0, 0, 1, 0, 1, 1]]}

    doc = {"images": [{"id": 1, "file_name": "a.png", "height": 100, "width": 200},
                      {"id": 2, "file_name": "b.png", "height": 50, "width": 50}],
           "annotations": [ann(1, 1, 20), ann(2, 1, 40), ann(3, 2, 10)], "categories": [{"id": 1, "name": "n"}]}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    scale, size = training_scale(path, 100, 1000)  # factors 1.0 and 2.0; diameters 20, 40 and 10 * 2
    assert scale == pytest.approx(1.5) and size == pytest.approx(20.0)
    assert training_scale(path, 100, 150)[0] == pytest.approx((0.75 + 2.0) / 2)  # the long side caps image a
