"""What numpy's BLAS threads do to the torch work that follows them on a small machine.

numpy's OpenBLAS keeps its worker threads spinning for a while after a matrix product. On a 2-core machine
they then hold the cores that torch's threads need. The model's transform resizes GA maps from their crops
(``CropStack.resized``, bilinear) right before the backbone's forward, and until 2026-12-05 it did its products
in numpy. This times the backbone's forward (bf16 autocast) after three things: nothing; the GA maps resized
as today (products in torch); the same products in numpy (the former code).

    .venv/bin/python -m benchmarks.studies.bench_blas_threads [--instances 30] [--repeat 9]
        [--json benchmarks/results/bench_blas_threads.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gains.config import ModelConfig
from gains.data.crops import CropStack, _linear_sources, _weights
from gains.models.build import build_model


def ga_stack(instances: int, frame: int, rng: np.random.Generator) -> CropStack:
    """``instances`` GA maps (fill 1, crops of 60-200 px, values 1..2) in a ``frame``-px square, like isbi2014's
    cells."""
    parts = []
    for _ in range(instances):
        h, w = rng.integers(60, 200, size=2)
        y0, x0 = rng.integers(0, frame - h), rng.integers(0, frame - w)
        parts.append((int(y0), int(x0), (1 + rng.random((h, w))).astype(np.float32), 1.0))
    return CropStack.of(frame, frame, parts, np.float32)


def numpy_products(stack: CropStack, out: int) -> None:
    """The bilinear resize's per-crop products ``wy @ (crop - fill) @ wx.T`` done by numpy, as before."""
    rows, cols = _linear_sources(stack.height, out), _linear_sources(stack.width, out)
    for (y0, x0, h, w), crop, fill in zip(stack.boxes.tolist(), stack.crops, stack.fills, strict=True):
        _, _, wy = _weights(rows, y0, h)
        _, _, wx = _weights(cols, x0, w)
        wy @ (crop.astype(np.float64) - fill) @ wx.T


def timed_after(before: Callable[[], None], forward: Callable[[], None], repeat: int) -> tuple[float, float]:
    """(median seconds of ``before``, median seconds of ``forward`` run right after it)."""
    first, second = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        before()
        t1 = time.perf_counter()
        forward()
        first.append(t1 - t0)
        second.append(time.perf_counter() - t1)
    return statistics.median(first), statistics.median(second)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--instances", type=int, default=30)
    p.add_argument("--frame", type=int, default=512, help="side of the stored frame (isbi2014: 512)")
    p.add_argument("--size", type=int, default=384, help="side the transform resizes to (isbi2014_cpu: 384)")
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.manual_seed(0)
    backbone = build_model(ModelConfig(backbone="resnet18", norm="gn"), 2).backbone.eval()
    x = torch.randn(2, 3, args.size, args.size)
    stack = ga_stack(args.instances, args.frame, np.random.default_rng(0))

    def forward() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            backbone(x)

    cases = {"nothing": lambda: None,
             "GA maps resized, products in torch (today)": lambda: stack.resized(args.size, args.size, "bilinear"),
             "the same products in numpy (before)": lambda: numpy_products(stack, args.size)}
    forward()
    rows = {}
    for _ in range(2):  # two passes, alternated; the second is kept
        for name, before in cases.items():
            rows[name] = timed_after(before, forward, args.repeat)
    for name, (own, fwd) in rows.items():
        print(f"{name}: {own:.3f} s, then the backbone's forward {fwd:.3f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "instances": args.instances, "frame": args.frame, "size": args.size, "repeat": args.repeat,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "numpy": np.__version__,
            "rows": {k: {"own_s": round(a, 4), "backbone_forward_s": round(b, 4)} for k, (a, b) in rows.items()},
        }, indent=1) + "\n")


if __name__ == "__main__":
    main()
