"""Patch training: windows at the model's scale, cut instances, alignment through flips and turns, the CLI run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from gains.data.crops import CropStack
from gains.data.dataset import InstanceDataset
from gains.data.patch import PatchSampler, Window, contact_points
from gains.data.transforms import Compose, RandomFlip, RandomRot90, boxes_from_masks
from gains.gamm import GammParams
from gains.intensity import Normalisation
from tests.conftest import TINY, disc_polygon, write_coco

NUCLEI = GammParams.for_variant("nuclei", target_category=1)


def coordinate_scene(folder: Path) -> Path:
    """A 200 x 240 RGB image whose red value is the row and green the column of each pixel, with 12 discs in
    touching and overlapping pairs (some on the border)."""
    centres = [(20, 20), (20, 41), (60, 100), (66, 118), (120, 60), (120, 82), (150, 200), (170, 215),
               (100, 180), (5, 120), (190, 10), (100, 235)]
    anns = [{"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(cy, cx, 11)]} for cy, cx in centres]
    path = write_coco(folder, [("xy.png", 200, 240)], anns, [{"id": 1, "name": "nucleus"}])
    rows, cols = np.mgrid[0:200, 0:240]
    Image.fromarray(np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)).save(
        folder / "images" / "xy.png")
    return path


@pytest.mark.parametrize("seed", range(12))
def test_windows_stay_aligned_through_every_flip_and_turn(tmp_path: Path, seed: int) -> None:
    """At scale 1 each sample pixel comes from one image pixel, read back from the coordinate image: every
    mask and GA map pixel of the sample equals the whole image's at that position, and every box is its mask's
    tight box, after the crop and any flips and quarter turns."""
    ann = coordinate_scene(tmp_path / "ds")
    whole = InstanceDataset(ann, gamm=NUCLEI, cache_dir=tmp_path / "cache", normalisation=Normalisation("dtype"))
    _, full = whole[0]
    ids = full["annotation_ids"].tolist()
    assert (full["ga_maps"] > 1).any()  # contacts: maps that differ from 1
    steps = Compose([RandomFlip(0.5, 0.5), RandomRot90(0.75)])
    patches = InstanceDataset(ann, gamm=NUCLEI, cache_dir=tmp_path / "cache", normalisation=Normalisation("dtype"),
                              transforms=steps, patch=PatchSampler(64, 1.0, focus=0.8, min_area=0))
    torch.manual_seed(seed)
    for _ in range(4):
        image, target = patches[0]
        assert image.shape == (3, 64, 64)
        rows = (image[0] * 255).round().long()
        cols = (image[1] * 255).round().long()
        assert torch.equal(target["boxes"], boxes_from_masks(target["masks"]))
        for j, a in enumerate(target["annotation_ids"].tolist()):
            k = ids.index(a)
            assert torch.equal(target["masks"][j], full["masks"][k][rows, cols])
            assert torch.equal(target["ga_maps"][j], full["ga_maps"][k][rows, cols])
        inside = {ids[k] for k in range(len(ids)) if full["masks"][k][rows, cols].any()}
        assert set(target["annotation_ids"].tolist()) == inside  # min_area 0: every visible part stays


def test_cropped_is_the_window_of_the_dense_stack() -> None:
    rng = np.random.default_rng(0)
    parts = [(0, 3, rng.random((4, 7)), 1.0), (19, 0, rng.random((4, 5)), 1.0), (5, 25, rng.random((9, 6)), 0.5),
             (7, 9, None, 1.0), (2, 2, rng.random((3, 12)), 0.0)]
    s = CropStack.of(23, 31, [(y, x, None if v is None else v.astype(np.float32), f) for y, x, v, f in parts],
                     np.float32)
    for y0, x0, h, w in [(0, 0, 23, 31), (3, 4, 10, 10), (18, 26, 5, 5), (10, 0, 1, 31)]:
        assert torch.equal(s.cropped(y0, x0, h, w).dense(), s.dense()[:, y0 : y0 + h, x0 : x0 + w])
    assert torch.equal(s[np.array([True, False, True, False, True])].dense(), s.dense()[[0, 2, 4]])
    with pytest.raises(ValueError, match="outside"):
        s.cropped(20, 0, 5, 5)


def rect_target(height: int, width: int, rects: list[tuple[int, int, int, int]]) -> dict:
    """A whole-image target of filled rectangles (y0, x0, h, w), ids 1.., GA map 2 inside."""
    masks = CropStack.of(height, width, [(y, x, np.ones((h, w), np.uint8), 0.0) for y, x, h, w in rects], np.uint8)
    maps = CropStack.of(height, width, [(y, x, np.full((h, w), 2.0, np.float32), 1.0) for y, x, h, w in rects],
                        np.float32)
    n = len(rects)
    return {"masks": masks, "ga_maps": maps, "boxes": torch.zeros(n, 4), "area": torch.zeros(n),
            "labels": torch.ones(n, dtype=torch.int64), "iscrowd": torch.zeros(n, dtype=torch.int64),
            "annotation_ids": torch.arange(1, n + 1), "image_id": torch.tensor(1)}


def test_cut_instances_keep_their_visible_part_and_small_fragments_go() -> None:
    """Window rows 0-55, columns 0-55 at scale 1, min_area 16: A (20 x 20 at row 10, column 50) keeps 20 x 6 =
    120 px; B (at row 40, column 54) keeps 16 x 2 = 32 px; C (at row 54, column 20) keeps 2 x 5 = 10 px and goes;
    D, 3 x 3 wholly inside, stays though smaller than 16; E is outside."""
    target = rect_target(100, 100, [(10, 50, 20, 20), (40, 54, 20, 20), (54, 20, 20, 5), (5, 5, 3, 3),
                                    (70, 70, 10, 10)])
    sampler = PatchSampler(56, 1.0, min_area=16)
    image, out = sampler.cut(torch.rand(3, 56, 56), target, Window(0, 0, 56, 56, 56, 56, 1.0))
    assert image.shape == (3, 56, 56)
    assert out["annotation_ids"].tolist() == [1, 2, 4]
    assert out["boxes"].tolist() == [[50, 10, 56, 30], [54, 40, 56, 56], [5, 5, 8, 8]]
    assert out["area"].tolist() == [120, 32, 9]
    assert torch.equal(out["ga_maps"] > 1.5, out["masks"].bool())
    assert out["masks"].shape == (3, 56, 56) and out["ga_maps"].dtype == torch.float32


def test_the_window_covers_crop_size_over_scale_image_pixels() -> None:
    """crop 64 at scale 0.5: 128 image pixels a side; a 100 px high image is taken whole (50 network pixels)."""
    sampler = PatchSampler(64, 0.5)
    win = sampler.window(100, 300, np.zeros((0, 4), np.int64))
    assert (win.h, win.w, win.out_h, win.out_w) == (100, 128, 50, 64)
    assert win.y0 == 0 and 0 <= win.x0 <= 300 - 128
    jitter = PatchSampler.of(64, 0.5, [224, 256, 288], 0.8, 16)
    assert jitter.factors == (0.875, 1.0, 1.125)
    torch.manual_seed(0)
    sides = {jitter.window(1000, 1000, np.zeros((0, 4), np.int64)).h for _ in range(60)}
    assert sides == {round(64 / 0.4375), 128, round(64 / 0.5625)}  # 146, 128, 114


@pytest.mark.parametrize(("focus", "low", "high"), [(1.0, 200, 200), (0.0, 0, 20)])
def test_focus_centres_windows_on_instances(focus: float, low: int, high: int) -> None:
    """One 10 x 10 instance in a 1000 px image, 100 px windows: focus 1 always holds it; uniform windows hold it
    with probability (110 / 901)^2, about 1.5%."""
    sampler = PatchSampler(100, 1.0, focus=focus)
    boxes = np.array([[500, 500, 10, 10]])
    torch.manual_seed(1)
    hits = 0
    for _ in range(200):
        w = sampler.window(1000, 1000, boxes)
        hits += w.y0 < 510 and w.y0 + w.h > 500 and w.x0 < 510 and w.x0 + w.w > 500
    assert low <= hits <= high


def test_contact_points_lie_where_pairs_overlap_or_touch() -> None:
    """Discs of radius 10: a pair 15 px apart (overlapping), a pair 21 px apart (touching: 8-adjacent, no shared
    pixel) and a lone disc give one point each for the two pairs, in both masks or next to both."""
    from gains.core.masks import segmentation_to_crop

    centres = [(30, 30), (30, 45), (100, 30), (100, 51), (60, 150)]
    crops = [segmentation_to_crop([disc_polygon(cy, cx, 10)], 200, 200) for cy, cx in centres]
    full = np.zeros((len(crops), 200, 200), bool)
    for k, c in enumerate(crops):
        full[k, c.y0:c.y1, c.x0:c.x1] = c.mask
    assert full[0].any() and not (full[2] & full[3]).any() and (full[0] & full[1]).any()
    stack = CropStack.of(200, 200, [(c.y0, c.x0, c.mask.astype(np.uint8), 0.0) for c in crops], np.uint8)
    points = contact_points(stack)
    assert len(points) == 2
    (y, x), (v, u) = sorted(points.tolist())
    assert full[0, y, x] and full[1, y, x]  # inside both of the overlapping pair
    assert full[3, v, u] and full[2, v - 1 : v + 2, u - 1 : u + 2].any()  # of the touching pair: next to the other


@pytest.mark.parametrize(("contacts", "low", "high"), [(1.0, 60, 60), (0.0, 1, 20)])
def test_contact_windows_hold_the_pair(tmp_path: Path, contacts: float, low: int, high: int) -> None:
    """A 1024 px image with 16 lone discs and one touching pair: windows centred on contacts always hold the
    pair; windows centred on instances hold it about 2 times in 17."""
    lone = [(cy, cx) for cy in range(60, 1024, 250) for cx in range(60, 1024, 250)]
    centres = [*lone, (900, 180), (900, 201)]
    anns = [{"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(cy, cx, 10)]} for cy, cx in centres]
    ann = write_coco(tmp_path / "pair", [("p.png", 1024, 1024)], anns, [{"id": 1, "name": "nucleus"}])
    data = InstanceDataset(ann, cache_dir=tmp_path / "cache", crops=True,
                           patch=PatchSampler(64, 1.0, focus=1.0, contacts=contacts))
    torch.manual_seed(3)
    hits = sum(len(data[0][1]["masks"]) == 2 for _ in range(60))
    assert low <= hits <= high


def test_a_2048_px_image_gives_crop_size_samples(tmp_path: Path) -> None:
    anns = [{"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(cy, cx, 20)]}
            for cy in range(100, 2048, 300) for cx in range(100, 2048, 300)]
    ann = write_coco(tmp_path / "big", [("big.png", 2048, 2048)], anns, [{"id": 1, "name": "nucleus"}])
    data = InstanceDataset(ann, gamm=NUCLEI, cache_dir=tmp_path / "cache",
                           patch=PatchSampler(128, 0.5, focus=1.0), crops=True)
    torch.manual_seed(0)
    for _ in range(3):
        image, target = data[0]
        assert image.shape == (3, 128, 128)
        assert target["masks"].shape[1:] == (128, 128) and target["ga_maps"].shape[1:] == (128, 128)
        assert 1 <= len(target["masks"]) <= 4  # 256 image pixels hold parts of at most 2 x 2 discs 300 px apart


def test_an_image_without_instances_gives_an_empty_window(tmp_path: Path) -> None:
    ann = write_coco(tmp_path / "empty", [("e.png", 300, 200)], [], [{"id": 1, "name": "nucleus"}])
    data = InstanceDataset(ann, gamm=NUCLEI, cache_dir=tmp_path / "cache", patch=PatchSampler(64, 0.5))
    image, target = data[0]
    assert image.shape == (3, 64, 64) and target["masks"].shape == (0, 64, 64)
    assert target["ga_maps"].shape == (0, 64, 64) and target["boxes"].shape == (0, 4)


def test_gains_train_records_the_scale_and_predict_applies_it(tmp_path: Path) -> None:
    """Training on 64 px windows at scale 0.75 (72 / 96, measured from the 96 px training images) runs, the
    checkpoint's config holds the scale, and ``gains predict`` on the run applies it."""
    from gains.cli import main

    run = tmp_path / "run"
    sets = [*TINY, "train.max_iters=2", "train.eval_period=0", "data.crop_size=64", "model.min_size_test=72"]
    assert main(["train", *[x for s in sets for x in ("--set", s)], "--out", str(run), "--quiet"]) == 0
    saved = torch.load(run / "last.pt", map_location="cpu", weights_only=False)["config"]
    assert saved["data"]["crop_size"] == 64 and saved["model"]["test_scale"] == 0.75
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["test_scale"] == 0.75
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["iter"] for x in lines if "split" not in x] == [0, 1]
    image = run / "data" / "val" / "images"
    out = subprocess.run([sys.executable, "-m", "gains", "predict", str(run), str(next(image.iterdir())),
                          "--out", str(tmp_path / "pred")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "scale 0.75 (the model's rule" in out.stdout
