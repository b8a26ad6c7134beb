"""CUDA checks (marker ``gpu``; skipped without CUDA): CPU-vs-CUDA parity of the forward pass, AMP
training steps, and a one-process NCCL group. ``benchmarks/release/gpu_check.sh`` runs them on a GPU machine."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch

from gains.config import ModelConfig, load_config
from gains.engine.train import fit
from gains.models.build import build_model
from tests.conftest import TINY

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture
def exact_cuda():
    """fp32 matmuls and convolutions on CUDA without TF32, restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_forward_parity_cpu_vs_cuda(exact_cuda) -> None:
    """Backbone features, mask logits and anomaly logits on fixed boxes agree between CPU and CUDA."""
    torch.manual_seed(0)
    cfg = ModelConfig(variant="gains", backbone="resnet18", norm="gn", trainable_layers=5, min_size_test=160,
                      max_size=160)
    model = build_model(cfg, 2).eval()
    image = torch.rand(3, 160, 160, generator=torch.Generator().manual_seed(1))
    boxes = torch.tensor([[10.0, 12.0, 70.0, 80.0], [40.0, 30.0, 120.0, 100.0], [5.0, 90.0, 60.0, 150.0]])

    def run(device: str) -> dict[str, torch.Tensor]:
        m = model.to(device)
        with torch.no_grad():
            images, _ = m.transform([image.to(device)])
            feats = m.backbone(images.tensors)
            logits, inner, pooled = m.roi_heads._forward_mask(feats, [boxes.to(device)], images.image_sizes)
            ga = m.roi_heads._forward_ga(pooled, inner)
        return {"p2": feats["0"].cpu(), "mask": logits.cpu(), "ga": ga.cpu()}

    cpu, cuda = run("cpu"), run("cuda")
    for k in cpu:
        scale = cpu[k].abs().max().clamp_min(1e-6)
        assert (cpu[k] - cuda[k]).abs().max() / scale < 1e-4, k


@pytest.mark.parametrize("amp", ["fp16", "bf16", "none", "auto"])
def test_training_steps_on_cuda(tmp_path: Path, amp: str) -> None:
    """Three GAInS steps on CUDA (with autocast where asked; auto: bf16 where the GPU supports it) give finite
    losses, a GA loss and a checkpoint."""
    cfg = load_config(None, [*TINY, "train.device=cuda", f"train.amp={amp}", "train.max_iters=3",
                             "train.eval_period=3"])
    summary = fit(cfg, tmp_path / "run", progress=False)
    assert summary["amp"] == (("bf16" if torch.cuda.is_bf16_supported() else "fp16") if amp == "auto" else amp)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 3 and all(torch.isfinite(torch.tensor(r["loss"])) and r["loss_ga"] > 0 for r in steps)
    assert any(r.get("split") == "val" for r in records) and (tmp_path / "run" / "last.pt").exists()


def test_nccl_one_process_group() -> None:
    """NCCL initialises with one rank; collectives and our object helpers work inside the group."""
    import torch.distributed as tdist

    from gains.core import parallel as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tdist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        x = torch.arange(4.0, device="cuda")
        tdist.all_reduce(x)
        assert x.tolist() == [0.0, 1.0, 2.0, 3.0]
        assert dist.world_size() == 1 and dist.is_main()
        assert dist.all_gather_objects({"a": 1}) == [{"a": 1}] and dist.broadcast_object(7) == 7
    finally:
        dist.cleanup()
    assert not tdist.is_initialized()
