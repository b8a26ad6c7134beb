"""CPU training options that were candidates for the presets, each timed against eager NCHW on the same
tensors: channels-last memory format and ``torch.compile`` for the ResNet-18-FPN-GN backbone, channels-last
for the mask branch and the anomaly branch. Forward + backward under bf16 autocast, median of ``--repeat``
calls after one warm-up call (the compiled backbone's first call, compilation included, is reported apart).

    .venv/bin/python -m benchmarks.studies.bench_train_options [--size 384] [--rois 32] [--repeat 5] [--no-compile]
        [--json benchmarks/results/bench_train_options.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks import RESULTS
from gains.config import ModelConfig
from gains.models.build import build_model
from gains.models.heads import GuidanceFusion, MaskBranch


def median_seconds(fn: Callable[[], None], repeat: int) -> float:
    fn()  # warm-up: oneDNN primitives, allocator
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def backbone_step(backbone: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = backbone(x)
        sum(o.float().mean() for o in out.values()).backward()
    return run


def heads_step(mask: MaskBranch, fusion: GuidanceFusion, anomaly: MaskBranch, pooled: torch.Tensor
               ) -> Callable[[], None]:
    def run() -> None:
        x = pooled.detach().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, inner = mask(x)
            ga, _ = anomaly(fusion(x, inner))
        (logits.float().mean() + ga.float().mean()).backward()
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=384, help="image side (isbi2014 CPU preset: 384)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--rois", type=int, default=32, help="positive RoIs of a batch (CPU presets: up to 2 x 16)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--json", type=Path, default=RESULTS / "bench_train_options.json")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    cfg = ModelConfig(variant="maskrcnn", backbone="resnet18", norm="gn", trainable_layers=5)
    x = torch.randn(args.batch, 3, args.size, args.size)
    rows: dict[str, float] = {}
    backbone = build_model(cfg, 2).backbone
    rows["backbone+fpn, NCHW"] = median_seconds(backbone_step(backbone, x), args.repeat)
    last = build_model(cfg, 2).backbone.to(memory_format=torch.channels_last)
    rows["backbone+fpn, channels-last"] = median_seconds(
        backbone_step(last, x.contiguous(memory_format=torch.channels_last)), args.repeat)
    compile_s = None
    if not args.no_compile:
        compiled = torch.compile(build_model(cfg, 2).backbone, dynamic=False)
        t0 = time.perf_counter()
        backbone_step(compiled, x)()
        compile_s = time.perf_counter() - t0
        rows["backbone+fpn, torch.compile"] = median_seconds(backbone_step(compiled, x), args.repeat)
    pooled = torch.randn(args.rois, 256, 14, 14)
    heads = [MaskBranch(256, 3), GuidanceFusion(256), MaskBranch(256, 3)]
    rows["mask + anomaly branches, NCHW"] = median_seconds(heads_step(*heads, pooled), args.repeat)
    heads = [h.to(memory_format=torch.channels_last) for h in heads]
    rows["mask + anomaly branches, channels-last"] = median_seconds(
        heads_step(*heads, pooled.contiguous(memory_format=torch.channels_last)), args.repeat)
    result = {"size": args.size, "batch": args.batch, "rois": args.rois, "repeat": args.repeat,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "compile_first_call_s": compile_s,
              "seconds": {k: round(v, 4) for k, v in rows.items()}}
    for k, v in rows.items():
        print(f"{k:<40} {v:.3f} s")
    if compile_s is not None:
        print(f"torch.compile first call (compilation included): {compile_s:.0f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
