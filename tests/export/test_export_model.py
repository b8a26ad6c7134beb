"""Exported models: TorchScript and ONNX graphs reproduce the eager model (boxes, scores, labels, masks, GA maps)
on images of several sizes, the host steps in ``gains.export.host`` reproduce its pasting, and
``gains export-model`` writes the file and its sidecar, or one error line and nothing."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gains.cli import main
from gains.export import host
from gains.export.export_run import TOLERANCE, as_dict, differences, export_model
from gains.export.graph import inference_graph, output_names

# A tiny untrained model: ResNet-18/GroupNorm at about 100 px with a test scale, so the host resizes. Its mask and
# anomaly predictors get larger weights than their init (std 0.001) so that the maps vary.
TINY_MODEL = {"backbone": "resnet18", "norm": "gn", "trainable_layers": 5, "min_size_train": [96], "min_size_test": 96,
              "max_size": 160, "test_scale": 1.3, "object_size": 18.0, "rpn_pre_nms_top_n_test": 60,
              "rpn_post_nms_top_n_test": 40, "detections_per_img": 20, "box_score_thresh": 0.05}
CATEGORIES = [{"label": 1, "id": 7, "name": "nucleus"}, {"label": 2, "id": 9, "name": "cell"}]


def _checkpoint(folder: Path, variant: str) -> Path:
    from gains.config import Config, apply_overrides, config_to_dict
    from gains.engine.checkpoint import save_checkpoint
    from gains.models.build import build_model

    settings = {**TINY_MODEL, "variant": variant}
    cfg = apply_overrides(Config(), [f"model.{k}={json.dumps(v)}" for k, v in settings.items()])
    torch.manual_seed(0)
    model = build_model(cfg.model, len(CATEGORIES))
    heads = model.roi_heads
    for branch in (heads.mask_branch, heads.anomaly):
        if branch is not None:
            torch.nn.init.normal_(branch.predictor.weight, std=0.05)
            torch.nn.init.normal_(branch.predictor.bias, std=0.5)
    path = folder / f"{variant}.pt"
    save_checkpoint(path, model=model.state_dict(), config=config_to_dict(cfg), categories=CATEGORIES,
                    variant=variant)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ckpt")
    return {variant: _checkpoint(folder, variant) for variant in ("gains", "maskrcnn")}


@pytest.fixture(scope="module", params=["gains", "maskrcnn"])
def tiny(request, checkpoints) -> SimpleNamespace:
    """A tiny checkpoint loaded as ``gains predict`` loads it, its graph and its sidecar."""
    from gains.export.export_run import describe
    from gains.inference.loading import load_model

    model, cfg, cats = load_model(checkpoints[request.param])
    graph = inference_graph(model)
    meta = json.loads(json.dumps(describe(cfg, cats, graph, "torchscript", "x", "tiny", None)))
    meta["score_thresh"] = 0.0  # compare every detection
    return SimpleNamespace(model=model, graph=graph, meta=meta)


def _images() -> list[np.ndarray]:
    """Two uint8 images of other sizes than the tracing image (bright discs on a dark ground)."""
    rng = np.random.default_rng(3)
    out = []
    for h, w in ((80, 100), (120, 72)):
        yy, xx = np.mgrid[:h, :w]
        img = rng.normal(20, 4, (h, w))
        for _ in range(6):
            cy, cx, r = rng.uniform(10, h - 10), rng.uniform(10, w - 10), rng.uniform(5, 10)
            img[np.hypot(yy - cy, xx - cx) < r] = rng.uniform(150, 230)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def _assert_parity(tiny: SimpleNamespace, run) -> None:
    """``run(x) -> outputs by name`` matches the eager model (``model(images)`` as ``gains predict`` calls it) on
    every test image within ``TOLERANCE``, and ``host.to_image`` pastes its maps as the model's transform does."""
    from gains.data.dataset import image_to_tensor

    model, meta, total = tiny.model, tiny.meta, 0
    for pixels in _images():
        h, w = pixels.shape
        x = host.network_input(pixels, meta)
        network = tuple(x.shape[-2:])
        assert network == (round(h * 1.3), round(w * 1.3))
        with torch.no_grad():
            raw = run(x)
            model.transform.paste = False
            try:
                want = model([image_to_tensor(pixels, host.normalisation(meta))])[0]
            finally:
                model.transform.paste = True
        got = host.to_image(raw, meta, h, w, network, paste=False)
        assert set(got) == set(want) == set(output_names(tiny.graph))
        assert len(want["scores"]) > 0
        diff = differences(want, got)
        assert all(diff[k] <= TOLERANCE[k] for k in diff), diff
        # the host's pasting = the model's own (GainsTransform.postprocess) on the same network-frame outputs
        pasted = host.to_image(raw, meta, h, w, network, paste=True)
        ref = model.transform.postprocess([{k: v.clone() for k, v in raw.items()}], [network], [(h, w)])[0]
        assert pasted["masks"].shape == (len(want["scores"]), h, w)
        assert torch.equal(pasted["masks"], ref["masks"][:, 0] >= 0.5) and pasted["masks"].any()
        if "ga_maps" in want:
            assert torch.allclose(pasted["ga_maps"], ref["ga_maps"][:, 0])
        total += len(want["scores"])
    assert total >= 10


@pytest.mark.slow
def test_torchscript_matches_the_eager_model(tiny: SimpleNamespace) -> None:
    from gains.export import torchscript

    scripted = torchscript.load(torchscript.to_bytes(tiny.graph))
    assert isinstance(scripted, torch.jit.ScriptModule)
    _assert_parity(tiny, lambda x: as_dict(tiny.graph, scripted(x)))


@pytest.mark.slow
def test_onnx_matches_the_eager_model_in_onnxruntime(tiny: SimpleNamespace) -> None:
    pytest.importorskip("onnxruntime")
    from gains.export import onnx as onnx_export
    from gains.export.export_run import synthetic_image

    sess = onnx_export.session(onnx_export.to_bytes(tiny.graph, synthetic_image(128, 128, 18.0)))
    assert [o.name for o in sess.get_outputs()] == output_names(tiny.graph)
    _assert_parity(tiny, lambda x: onnx_export.run(sess, x))


def test_torchscript_runs_an_image_without_detections(checkpoints) -> None:
    from gains.export import torchscript
    from gains.inference.loading import load_model

    model, _, _ = load_model(checkpoints["gains"], ["model.box_score_thresh=0.999"])
    graph = inference_graph(model)
    with torch.no_grad():
        out = as_dict(graph, torchscript.load(torchscript.to_bytes(graph))(torch.rand(3, 70, 90)))
    assert out["boxes"].shape == (0, 4) and out["masks"].shape == (0, 1, 28, 28) and out["ga_maps"].shape[0] == 0


def test_the_graph_leaves_the_model_unchanged(tiny: SimpleNamespace) -> None:
    model, graph = tiny.model, tiny.graph
    assert len(model.rpn.head._forward_hooks) == 1  # the float32 hook stays on the model
    assert not graph.rpn.head._forward_hooks and graph.backbone is not model.backbone
    assert all(torch.equal(a, b) for a, b in zip(graph.backbone.state_dict().values(),
                                                 model.backbone.state_dict().values(), strict=True))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gains export-model: error: "), err
    return err[0]


@pytest.mark.slow
def test_cli_writes_a_torchscript_file_and_its_sidecar(checkpoints, tmp_path: Path, capsys) -> None:
    ckpt = checkpoints["gains"]
    out = tmp_path / "exports" / "tiny.pt"
    assert main(["export-model", str(ckpt), "--to", "torchscript", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "checked against the eager model" in printed
    load = "python -c \"import torch, torchvision; m = torch.jit.load('tiny.pt')\""
    assert "to load it: needs torchvision's native ops" in printed and load in printed
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.pt", "tiny.pt.json"]
    meta = host.read_sidecar(out)
    assert meta["format"] == "torchscript" and meta["variant"] == "gains" and meta["categories"] == CATEGORIES
    assert load in meta["load"] and meta["full"] is False
    assert meta["input"]["test_scale"] == 1.3 and meta["input"]["intensity"]["mode"] == "percentile"
    assert meta["mask_size"] == 28 and list(meta["outputs"]) == ["boxes", "scores", "labels", "masks", "ga_maps"]
    assert all(v <= TOLERANCE[k] for k, v in meta["check"]["max_abs_diff"].items())
    scripted = torch.jit.load(str(out))
    boxes, scores, labels, masks, ga = scripted(host.network_input(_images()[0], meta))
    assert boxes.shape[1] == 4 and masks.shape[1:] == (1, 28, 28) and ga.shape == masks.shape
    assert scores.shape == labels.shape == (len(boxes),) and labels.dtype == torch.int64
    # an existing file is kept unless --overwrite
    before = out.read_bytes()
    assert main(["export-model", str(ckpt), "--to", "torchscript", "--out", str(out)]) == 2
    assert "exists (pass --overwrite" in _one_error_line(capsys) and out.read_bytes() == before
    assert main(["export-model", str(ckpt), "--to", "torchscript", "--out", str(out), "--overwrite",
                 "--no-check"]) == 0
    assert host.read_sidecar(out)["check"]["max_abs_diff"] is None


@pytest.mark.slow
def test_cli_writes_an_onnx_file(checkpoints, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "tiny.onnx"
    assert main(["export-model", str(checkpoints["maskrcnn"]), "--to", "onnx", "--out", str(out)]) == 0
    meta = host.read_sidecar(out)
    assert meta["format"] == "onnx" and meta["opset"] == 17 and "ga_maps" not in meta["outputs"]
    assert set(meta["check"]["max_abs_diff"]) == {"boxes", "scores", "masks"}
    onnx = pytest.importorskip("onnx")
    onnx.checker.check_model(str(out))  # a valid ONNX model, by the onnx package's own checker
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["image"]
    # the sidecar travels inside the file too, one JSON value per key
    import onnxruntime

    props = onnxruntime.InferenceSession(str(out)).get_modelmeta().custom_metadata_map
    assert {k: json.loads(v) for k, v in props.items()} == meta


@pytest.mark.parametrize("case", ["missing", "format", "under_a_file", "folder"])
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(case: str, checkpoints, tmp_path: Path,
                                                            capsys) -> None:
    ckpt = tmp_path / "missing.pt" if case == "missing" else checkpoints["maskrcnn"]
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    out = {"under_a_file": tmp_path / "a_file" / "m.pt", "folder": tmp_path / "a_folder"}.get(case,
                                                                                            tmp_path / "new" / "m.pt")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    fmt = "tensorflow" if case == "format" else "torchscript"
    assert main(["export-model", str(ckpt), "--to", fmt, "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    expected = {"missing": "missing.pt: checkpoint not found", "format": "unknown export format 'tensorflow'",
                "under_a_file": "cannot write there", "folder": "is a folder"}[case]
    assert expected in line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_export_model_by_api_returns_a_summary(checkpoints, tmp_path: Path) -> None:
    summary = export_model(checkpoints["maskrcnn"], "torchscript", tmp_path / "m.pt", check=False)
    assert summary["bytes"] == (tmp_path / "m.pt").stat().st_size and summary["detections"] > 0
    assert summary["sidecar"] == tmp_path / "m.pt.json" and summary["max_abs_diff"] is None
