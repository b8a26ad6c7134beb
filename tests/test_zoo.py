"""Shipped models (gains.zoo): names, cards, sha256 checks, parts, loading by name, fine-tuning starts."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
import torch

from gains import zoo
from gains.cli import main
from gains.config import load_config
from gains.engine.checkpoint import load_checkpoint
from gains.errors import InputError
from gains.inference.loading import load_model
from gains.models.build import build_model
from gains.models.weights import load_weights


@pytest.fixture
def shipped(tiny_run: Path, tmp_path: Path, monkeypatch) -> Path:
    """The tiny run packed as a shipped model ``tiny`` in a private model folder, in parts of 4 MiB."""
    root = tmp_path / "models"
    monkeypatch.setattr(zoo, "_root", lambda: root)
    monkeypatch.setattr(zoo, "PART_BYTES", 4 * 2**20)
    zoo.card.cache_clear()
    zoo.pack(load_checkpoint(tiny_run / "last.pt"), root, "tiny", {"summary": "a one-iteration test model"})
    yield root
    zoo.card.cache_clear()


def test_pack_writes_checked_parts_and_a_card(shipped: Path, tiny_run: Path) -> None:
    assert zoo.names() == ["tiny"]
    info = zoo.card("tiny")
    parts = sorted((shipped / "tiny").glob("tiny.pt.*"))
    assert [p.name for p in parts] == [f["name"] for f in info["files"]] and len(parts) >= 2
    assert all(p.stat().st_size <= 4 * 2**20 for p in parts)
    assert sum(p.stat().st_size for p in parts) == info["bytes"]
    ckpt = zoo.load("tiny")
    original = load_checkpoint(tiny_run / "last.pt")
    assert "optimizer" not in ckpt and ckpt["config"] == original["config"]
    for k, v in original["model"].items():
        if v.is_floating_point():
            assert ckpt["model"][k].dtype == torch.float16
            assert torch.allclose(ckpt["model"][k].float(), v, rtol=1e-3, atol=1e-4), k


def test_a_flipped_byte_is_refused(shipped: Path) -> None:
    part = shipped / "tiny" / zoo.card("tiny")["files"][1]["name"]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"tiny: tiny\.pt\.001 does not match its sha256"):
        zoo.load("tiny")


def test_names_resolve_everywhere_and_unknown_names_list_the_known_ones(shipped: Path, tmp_path: Path, capsys,
                                                                        monkeypatch) -> None:
    model, cfg, categories = load_model("tiny")
    assert cfg.model.backbone == "resnet18" and categories and not model.training
    with pytest.raises(InputError, match=r"unknown model 'nucleii'; shipped models: tiny"):
        load_model("nucleii")
    img = tmp_path / "img.png"
    from PIL import Image

    Image.new("L", (64, 64), 40).save(img)
    assert main(["predict", "nucleii", str(img), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model 'nucleii'; shipped models: tiny" in err[0]
    assert not (tmp_path / "o").exists()

    def no_network(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(socket, "socket", no_network)
    assert main(["predict", "tiny", str(img), "--out", str(tmp_path / "p"), "--device", "cpu", "--quiet"]) == 0
    assert json.loads((tmp_path / "p" / "images.json").read_text())["images"][0]["height"] == 64
    assert main(["models"]) == 0
    assert "tiny" in capsys.readouterr().out and main(["models", "show", "tiny"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"] == "a one-iteration test model"


def test_an_existing_path_wins_over_a_name(shipped: Path, tiny_run: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("tiny").mkdir()
    with pytest.raises(InputError, match=r"tiny: no best\.pt or last\.pt in this run folder"):
        load_model("tiny")


def test_fine_tuning_start_loads_what_fits_and_reports_the_rest(shipped: Path, caplog) -> None:
    cfg = load_config(None, ["model.backbone=resnet18", "model.norm=gn", "model.trainable_layers=5"])
    source = zoo.load("tiny")["model"]
    same = build_model(cfg.model, 1)  # the tiny model has one category: every tensor fits
    assert load_weights(same, "tiny", "resnet18") == len(source)
    other = build_model(cfg.model, 3)
    with caplog.at_level(logging.INFO, logger="gains.models"):
        n = load_weights(other, "tiny", "resnet18")
    assert 0 < n < len(source)
    assert "roi_heads.box_predictor" in caplog.text and "skipped" in caplog.text
    state = other.state_dict()
    for key in ("backbone.body.conv1.weight", "backbone.fpn.inner_blocks.0.0.weight", "rpn.head.conv.0.0.weight"):
        assert torch.equal(state[key], source[key].float()), key
    assert state["roi_heads.box_predictor.cls_score.weight"].shape[0] == 4
    fresh = build_model(cfg.model, 1)
    init = {k: v.clone() for k, v in fresh.state_dict().items()}
    assert load_weights(fresh, "tiny", "resnet18", heads=False) == sum(not k.startswith("roi_heads.") for k in source)
    after = fresh.state_dict()
    assert torch.equal(after["roi_heads.mask_branch.predictor.weight"],
                       init["roi_heads.mask_branch.predictor.weight"])  # heads left as initialised
    assert torch.equal(after["rpn.head.conv.0.0.weight"], source["rpn.head.conv.0.0.weight"].float())
    with pytest.raises(InputError, match="unknown model 'nuclie'"):
        load_weights(other, "nuclie", "resnet18")


ASSETS = Path(__file__).resolve().parent / "assets"


@pytest.mark.skipif("nuclei" not in zoo.names(), reason="this installation ships no nuclei model")
def test_shipped_nuclei_model_segments_the_cc0_sample(tmp_path: Path) -> None:
    info = zoo.card("nuclei")
    assert info["training_data"]["licence"].startswith("CC0")
    assert "dsb2018_29780b28.png".removeprefix("dsb2018_")[:8] in " ".join(info["training_data"]["held_out"]
                                                                           ["test_other"])
    assert all(f["bytes"] <= zoo.PART_BYTES for f in info["files"])
    assert main(["predict", "nuclei", str(ASSETS / "dsb2018_29780b28.png"), "--out", str(tmp_path / "p"),
                 "--device", "cpu", "--quiet"]) == 0
    found = json.loads((tmp_path / "p" / "results.json").read_text())
    assert 14 <= len(found) <= 56, len(found)  # the image holds 28 annotated nuclei


@pytest.mark.skipif("overlap" not in zoo.names(), reason="this installation ships no overlap model")
def test_shipped_overlap_model_finds_overlapping_cells_in_an_unseen_scene(tmp_path: Path) -> None:
    from PIL import Image

    from gains.data.synth import make_sample

    info = zoo.card("overlap")
    assert info["training_data"]["licence"].startswith("CC0") and "nuclei" in info["training"]["started_from"]
    scene = make_sample("overlap", 0, 256, seed=4)  # seed 4: neither the training (100) nor the test (200) seed
    Image.fromarray(scene.image).save(tmp_path / "scene.png")
    assert main(["predict", "overlap", str(tmp_path / "scene.png"), "--out", str(tmp_path / "p"), "--format",
                 "coco,labels", "--device", "cpu", "--quiet"]) == 0
    found = json.loads((tmp_path / "p" / "results.json").read_text())
    truth = {c: scene.category_ids.count(c) for c in (1, 2)}  # cells, nuclei
    for c, n in truth.items():
        got = sum(f["category_id"] == c for f in found)
        assert n // 2 <= got <= 2 * n, (c, got, n)
    # overlapping cells are kept apart: the labels need one TIFF per overlap layer
    layers = sorted((tmp_path / "p").glob("scene_labels_layer*.tif"))
    assert len(layers) >= 2 and not (tmp_path / "p" / "scene_labels.tif").exists()
