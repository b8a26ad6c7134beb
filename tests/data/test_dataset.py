"""InstanceDataset: targets, category mapping, GA maps from a store or a hash-checked cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gains.data.crops import CropStack, dense
from gains.data.dataset import InstanceDataset, collate, image_to_tensor
from gains.data.split import split_dataset
from gains.data.transforms import Compose, RandomFlip, RandomRot90
from gains.errors import InputError
from gains.gamm import GammParams, GammStore, run_gamm
from gains.intensity import LEGACY
from tests.conftest import disc_polygon, write_coco

ISBI = GammParams.for_variant("isbi", target_category=1)


def test_targets_shapes_labels_and_boxes(small_coco: Path) -> None:
    ds = InstanceDataset(small_coco)
    image, target = ds[0]
    assert image.shape == (3, 64, 80) and image.dtype == torch.float32
    assert target["masks"].shape == (4, 64, 80) and target["masks"].dtype == torch.uint8
    assert target["labels"].tolist() == [1, 1, 1, 2]
    assert target["annotation_ids"].tolist() == [1, 2, 3, 4]
    assert "ga_maps" not in target  # no GAMM parameters (a baseline's data): no maps to carry
    m = target["masks"][0].bool()
    rows, cols = torch.nonzero(m, as_tuple=True)
    assert target["boxes"][0].tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    assert ds.label_to_category == {1: 1, 2: 2} and int(target["image_id"]) == 1
    images, targets = collate([ds[0], ds[1]])
    assert len(images) == len(targets) == 2


def test_category_ids_map_to_contiguous_labels(tmp_path: Path, small_coco: Path) -> None:
    doc = json.loads(small_coco.read_text())
    doc["categories"] = [{"id": 5, "name": "cell"}, {"id": 9, "name": "nucleus"}]
    for a in doc["annotations"]:
        a["category_id"] = {1: 5, 2: 9}[a["category_id"]]
    small_coco.write_text(json.dumps(doc))
    ds = InstanceDataset(small_coco)
    assert ds.category_to_label == {5: 1, 9: 2} and ds.label_to_category == {1: 5, 2: 9}
    assert ds[0][1]["labels"].tolist() == [1, 1, 1, 2]


def test_ga_maps_from_store_equal_on_the_fly_and_cache(small_coco: Path, tmp_path: Path) -> None:
    images = small_coco.parent / "images"
    run_gamm(small_coco, images, ISBI, out=tmp_path / "store", precision="float32", progress=False)
    fly = InstanceDataset(small_coco, gamm=ISBI, cache_dir=tmp_path / "cache")
    stored = InstanceDataset(small_coco, gamm=ISBI, ga_store=tmp_path / "store")
    for i in range(2):
        a, b = fly[i][1]["ga_maps"], stored[i][1]["ga_maps"]
        assert torch.allclose(a, b, atol=1e-6)
        assert a.max() > 1.05  # real anomalies, not a constant
        ids = fly[i][1]["annotation_ids"].tolist()
        store = GammStore(tmp_path / "store")
        for j, ann_id in enumerate(ids):
            assert np.allclose(store.load(ann_id), a[j].numpy(), atol=1e-6)
    cached = sorted(p.name for p in fly.cache_dir.glob("*.npz"))
    assert cached == ["1.npz", "2.npz"]
    again = InstanceDataset(small_coco, gamm=ISBI, cache_dir=tmp_path / "cache")
    assert again.cache_dir == fly.cache_dir
    other = InstanceDataset(small_coco, gamm=GammParams.for_variant("isbi", target_category=1, window_size=7),
                            cache_dir=tmp_path / "cache")
    assert other.cache_dir != fly.cache_dir  # parameters are part of the cache key


def test_store_serves_a_split_but_not_other_parameters(small_coco: Path, tmp_path: Path) -> None:
    images = small_coco.parent / "images"
    run_gamm(small_coco, images, ISBI, out=tmp_path / "store", progress=False)
    paths = split_dataset(small_coco.parent, (1, 0, 1), seed=0)
    ds = InstanceDataset(paths["train"], images=images, gamm=ISBI, ga_store=tmp_path / "store")
    assert len(ds) == 1 and ds[0][1]["ga_maps"].shape[0] > 0
    with pytest.raises(InputError, match="parameters"):
        InstanceDataset(small_coco, gamm=GammParams.for_variant("chrom", target_category=1),
                        ga_store=tmp_path / "store")
    doc = json.loads(small_coco.read_text())
    doc["annotations"].pop()
    small_coco.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="other annotations"):
        InstanceDataset(small_coco, gamm=ISBI, ga_store=tmp_path / "store")


def test_transforms_move_ga_maps_with_masks(small_coco: Path) -> None:
    torch.manual_seed(0)
    plain = InstanceDataset(small_coco, gamm=ISBI, cache=False)
    flipped = InstanceDataset(small_coco, gamm=ISBI, cache=False, transforms=RandomFlip(1.0, 0.0))
    (_, a), (_, b) = plain[0], flipped[0]
    assert torch.equal(b["masks"], a["masks"].flip(-1))
    assert torch.equal(b["ga_maps"], a["ga_maps"].flip(-1))


@pytest.mark.parametrize("seed", range(4))
def test_items_equal_the_transforms_applied_to_dense_targets(small_coco: Path, seed: int, tmp_path: Path) -> None:
    """The dataset moves crops, not stacks: every item equals the same flips and turns applied to the dense
    target, for GA maps from the cache and from a store."""
    run_gamm(small_coco, small_coco.parent / "images", ISBI, out=tmp_path / "store", precision="float32",
             progress=False)
    steps = Compose([RandomFlip(0.5, 0.5), RandomRot90(0.75)])
    for where in ({"cache_dir": tmp_path / "cache"}, {"ga_store": tmp_path / "store"}):
        plain = InstanceDataset(small_coco, gamm=ISBI, **where)
        moved = InstanceDataset(small_coco, gamm=ISBI, transforms=steps, **where)
        for i in range(len(plain)):
            torch.manual_seed(seed + 10 * i)
            image, target = moved[i]
            torch.manual_seed(seed + 10 * i)
            want_image, want = steps(*plain[i])
            assert torch.equal(image, want_image) and target.keys() == want.keys()
            for key, value in want.items():
                assert isinstance(target[key], torch.Tensor) and torch.equal(target[key], value), key


def test_empty_images_kept_or_filtered(small_coco: Path) -> None:
    doc = json.loads(small_coco.read_text())
    doc["images"].append({"id": 3, "file_name": "a.png", "height": 64, "width": 80})
    small_coco.write_text(json.dumps(doc))
    assert len(InstanceDataset(small_coco)) == 3
    ds = InstanceDataset(small_coco, keep_empty=False)
    assert len(ds) == 2
    _, target = InstanceDataset(small_coco, gamm=ISBI)[2]
    assert target["masks"].shape == (0, 64, 80) and target["boxes"].shape == (0, 4)


def test_image_to_tensor_dtype_mode_scales_by_bit_depth() -> None:
    u16 = np.full((4, 5), 65535, dtype=np.uint16)
    assert torch.allclose(image_to_tensor(u16, LEGACY), torch.ones(3, 4, 5))
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 2] = 255
    t = image_to_tensor(rgba, LEGACY)
    assert t.shape == (3, 4, 5) and torch.equal(t[2], torch.ones(4, 5)) and t[:2].sum() == 0


def test_size_mismatch_is_an_input_error(small_coco: Path) -> None:
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(small_coco.parent / "images" / "b.png")
    with pytest.raises(InputError, match="image 2: file is 10x10 but the JSON says 64x80"):
        InstanceDataset(small_coco)[1]


def test_zero_maps_keep_reaches_training_targets_from_the_cache_and_a_store(tmp_path: Path) -> None:
    anns = [{"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(20, x, r)]}
            for x, r in ((20, 8), (35, 8), (110, 5))]
    ann = write_coco(tmp_path / "d", [("a.png", 40, 130)], anns)
    keep = GammParams.for_variant("nuclei", target_category=1, zero_maps="keep")
    run_gamm(ann, ann.parent / "images", keep, out=tmp_path / "store", progress=False)
    for ds in (InstanceDataset(ann, gamm=keep, cache_dir=tmp_path / "cache"),
               InstanceDataset(ann, gamm=keep, ga_store=tmp_path / "store")):
        ga = ds[0][1]["ga_maps"]
        assert (ga[2] == 0).all() and ga[0].max() > 1.05
    ones = InstanceDataset(ann, gamm=GammParams.for_variant("nuclei", target_category=1), cache=False)
    assert (ones[0][1]["ga_maps"][2] == 1).all()


def test_crop_targets_train_the_model_like_dense_targets(small_coco: Path, tmp_path: Path) -> None:
    """crops=True (the training set's form) keeps masks and GA maps as CropStacks that are the dense targets,
    and a GAInS training forward on them gives the losses of the dense targets (the model's transform resizes
    the 64 x 80 images to 96 x 120 from the crops)."""
    from gains.config import ModelConfig
    from gains.models.build import build_model

    steps = Compose([RandomFlip(0.5, 0.5), RandomRot90(0.75)])
    lazy = InstanceDataset(small_coco, gamm=ISBI, cache_dir=tmp_path, transforms=steps, crops=True)
    eager = InstanceDataset(small_coco, gamm=ISBI, cache_dir=tmp_path, transforms=steps)
    batches = []
    for data in (lazy, eager):
        torch.manual_seed(3)
        batches.append(collate([data[0], data[1]]))
    (images, crop_targets), (_, dense_targets) = batches
    assert all(isinstance(t[k], CropStack) for t in crop_targets for k in ("masks", "ga_maps"))
    for a, b in zip(crop_targets, dense_targets, strict=True):
        assert all(torch.equal(dense(a[k]), b[k]) for k in b)
    small = ModelConfig(backbone="resnet18", norm="gn", min_size_train=[96], max_size=160, anomaly_channels=32,
                        rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50, box_batch_size_per_image=16)
    model = build_model(small, 2).train()
    losses = []
    for targets in (crop_targets, dense_targets):
        torch.manual_seed(0)
        with torch.no_grad():
            losses.append(model(images, targets))
    assert losses[0].keys() == losses[1].keys() and "loss_ga" in losses[0]
    for key, value in losses[1].items():
        assert abs(float(losses[0][key]) - float(value)) <= 1e-5 * max(1.0, abs(float(value))), key
