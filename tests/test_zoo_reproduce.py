"""benchmarks.release.zoo, the reproduction of the shipped models: the GPU configs train the same network as the CPU
ones, and the compact data copy for a GPU machine reads back as the data it copies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.release import zoo
from gains.config import config_to_dict, load_config
from gains.data.dataset import InstanceDataset
from gains.data.synth import CATEGORIES, write_synthetic
from tests.conftest import disc_polygon

# fields a GPU reproduction may set otherwise: they change how the model trains, not what it is or how it predicts
TRAINING_ONLY = {("data", "num_workers"), ("model", "rpn_pre_nms_top_n_train"), ("model", "rpn_post_nms_top_n_train"),
                 ("model", "box_batch_size_per_image"), ("model", "ga_rois_per_image")}


@pytest.mark.parametrize("model", sorted(zoo.CONFIGS))
def test_gpu_config_trains_the_same_network_with_the_same_test_settings(model: str) -> None:
    cpu, gpu = (config_to_dict(load_config(p)) for p in (zoo.CONFIGS[model], zoo.GPU_CONFIGS[model]))
    for section in ("data", "gamm", "model", "eval"):
        keys = set(cpu[section]) | set(gpu[section])
        differ = {k for k in keys if cpu[section].get(k) != gpu[section].get(k)}
        assert {(section, k) for k in differ} <= TRAINING_ONLY, (section, differ)
    assert gpu["train"]["device"] == "cuda" and gpu["train"]["amp"] == "bf16"
    # the whole reproduction (data, training, scoring, packing) must fit one 10-minute GPU call
    assert gpu["train"]["max_minutes"] <= 6
    fractions = [s / gpu["train"]["max_iters"] for s in gpu["train"]["steps"]]
    assert fractions == sorted(fractions) and 0.5 < fractions[0] < fractions[-1] < 1


@pytest.mark.parametrize("model", sorted(zoo.CONFIGS))
def test_every_model_has_a_data_rule_a_card_entry_and_held_out_parts(model: str) -> None:
    assert zoo.DESCRIBE[model] and zoo.DATA_CARD[model]["licence"] and zoo.HELD_OUT[model]
    rule = " ".join(zoo.data_rule(model).split())
    if model in zoo.SYNTHETIC:  # the rule the card records is the one prepare_synthetic follows
        kind = zoo.SYNTHETIC[model]
        assert zoo.HELD_OUT[model] == tuple(part for part in zoo.SCENES if part != "train")
        for n, seed in zoo.SCENES.values():
            assert f'write_synthetic("{kind}", {n}, {zoo.SCENE_SIZE}, seed={seed})' in rule, (model, rule)
        assert all(c["name"] in rule for c in CATEGORIES[kind]), rule
        assert f"'{kind}' scenes" in zoo.DATA_CARD[model]["dataset"]


def test_prepare_synthetic_generates_the_rule_scenes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zoo, "SCENES", {"train": (2, 100), "test": (1, 200)})
    paths = zoo.prepare("cross", tmp_path / "data")
    assert set(paths) == {"train", "test"}
    for part, (n, seed) in zoo.SCENES.items():
        doc = json.loads(paths[part].read_text())
        assert doc["categories"] == [{"id": 1, "name": "worm"}] and len(doc["images"]) == n
        assert (doc["info"]["split"], doc["info"]["rule"], doc["info"]["seed"]) == (part, zoo.data_rule("cross"), seed)
        # the same scenes as `gains synth thin --n N --size 256 --seed SEED`
        direct = json.loads(write_synthetic("thin", n, 256, seed, tmp_path / f"direct_{part}").read_text())
        assert doc["annotations"] == direct["annotations"]
        for im in direct["images"]:
            assert (paths[part].parent / "images" / im["file_name"]).read_bytes() == \
                (tmp_path / f"direct_{part}" / "images" / im["file_name"]).read_bytes()
    stamp = paths["train"].stat().st_mtime_ns
    assert zoo.prepare("cross", tmp_path / "data") == paths and paths["train"].stat().st_mtime_ns == stamp


def _nuclei_data(out: Path) -> dict[str, Path]:
    """OUT/data/all as zoo.prepare_nuclei leaves it: images/ and the three split JSONs (one grey-in-RGB image,
    one colour image)."""
    folder = out / "data" / "all"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    Image.fromarray(np.repeat(grey[..., None], 3, axis=-1)).save(folder / "images" / "g.png")
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / "images" / "c.png")
    images = [{"id": 1, "file_name": "g.png", "height": 48, "width": 64},
              {"id": 2, "file_name": "c.png", "height": 48, "width": 64}]
    anns = [{"id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "segmentation": [disc_polygon(24, 30, 9)]}
            for i in (1, 2)]
    cats = [{"id": 1, "name": "nucleus"}]
    paths = {}
    for name, ids in (("train", {1, 2}), ("test_cluster", {1}), ("test_other", {2})):
        doc = {"images": [im for im in images if im["id"] in ids],
               "annotations": [a for a in anns if a["image_id"] in ids], "categories": cats}
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps(doc))
    return paths


def test_bundle_writes_grey_images_as_one_channel_and_reads_back_the_same(tmp_path: Path) -> None:
    paths = _nuclei_data(tmp_path / "work")
    dest = tmp_path / "bundle"
    info = zoo.bundle("nuclei", tmp_path / "work", dest)
    assert (info["images"], info["grey"]) == (2, 1)
    src = tmp_path / "work" / "data" / "all"
    assert Image.open(dest / "all" / "images" / "g.png").mode == "L"
    assert (dest / "all" / "images" / "c.png").read_bytes() == (src / "images" / "c.png").read_bytes()
    for path in paths.values():
        assert (dest / "all" / path.name).read_bytes() == path.read_bytes()
    # what the network gets (normalised image, masks) is the same from the copy as from the original
    before, after = InstanceDataset(paths["train"]), InstanceDataset(dest / "all" / "train.json")
    for i in range(2):
        (img0, t0), (img1, t1) = before[i], after[i]
        assert img0.shape == img1.shape == (3, 48, 64) and torch.equal(img0, img1)
        assert torch.equal(t0["masks"], t1["masks"])
    assert not (tmp_path / "bundle.tmp").exists()


def test_bundle_refuses_an_existing_folder_and_leaves_it_alone(tmp_path: Path) -> None:
    _nuclei_data(tmp_path / "work")
    dest = tmp_path / "bundle"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="already exists"):
        zoo.bundle("nuclei", tmp_path / "work", dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_with_metrics_replaces_the_metrics_and_the_summary_tail_only() -> None:
    card = {"name": "nuclei", "sha256": "ab", "summary": "gains Mask R-CNN; DSB2018, from scratch; segm/AP 0.400 (a)",
            "metrics": {"a": {"segm/AP": 0.4}}}
    metrics = {"test_cluster": {"segm/AP": 0.42744, "contact_iou": 0.28}, "test_other": {"segm/AP": 0.5}}
    new = zoo.with_metrics(card, metrics)
    assert new["summary"] == "gains Mask R-CNN; DSB2018, from scratch; segm/AP 0.427 (test cluster), 0.500 (test other)"
    assert new["metrics"] is metrics and new["sha256"] == "ab"
    assert card["metrics"] == {"a": {"segm/AP": 0.4}}  # the cached card is not changed in place
    fresh = zoo.with_metrics({**card, "summary": "gains Mask R-CNN; DSB2018"}, {"test": {"segm/AP": 0.8136}})
    assert fresh["summary"] == "gains Mask R-CNN; DSB2018; segm/AP 0.814 (test)"
