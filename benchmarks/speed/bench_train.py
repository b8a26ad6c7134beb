"""Training-step and inference cost of GAInS against Mask R-CNN, measured in one run on the same data.

Step times are medians over ``--steps`` rounds after ``--warmup``, all variants interleaved in one
process with identical seeds and fixed weights (see ``timing``); peak memory is measured with each
variant alone in its own process (peak resident memory on the CPU, peak allocated memory on CUDA).
Variants: ``maskrcnn`` (our baseline head), ``gains``, and ``torchvision`` (torchvision's stock
maskrcnn_resnet50_fpn, the reference point for the baseline), each in fp32 and with autocast (``bf16``
on the CPU, ``fp16`` on CUDA); inference of gains with and without the anomaly branch against maskrcnn.

    .venv/bin/python -m benchmarks.speed.bench_train [--device cpu] [--size 512] [--batch 2] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import RESULTS, ROOT
from gains.sysinfo import peak_rss_mib


def _batch(size: int, batch: int):
    import numpy as np
    import torch

    from gains.core.masks import tight_crop
    from gains.data.synth import make_sample
    from gains.gamm import GammParams, InstanceInput, image_maps

    images, targets = [], []
    for k in range(batch):
        s = make_sample("overlap", k, size, seed=0)
        crops = [tight_crop(m) for m in s.masks]
        inputs = [InstanceInput(j + 1, c, crop, (crop.x0, crop.y0, crop.x1 - crop.x0, crop.y1 - crop.y0))
                  for j, (c, crop) in enumerate(zip(s.category_ids, crops, strict=True))]
        maps = image_maps(inputs, size, size, GammParams.for_variant("isbi", target_category=1))
        masks = torch.from_numpy(np.stack(s.masks)).to(torch.uint8)
        ys = [(m.any(1).nonzero()[0], m.any(0).nonzero()[0]) for m in s.masks]
        boxes = torch.tensor([[c[0], r[0], c[-1] + 1, r[-1] + 1] for r, c in ys], dtype=torch.float32)
        images.append(torch.from_numpy(s.image).float().div(255).expand(3, size, size).contiguous())
        targets.append({"boxes": boxes, "labels": torch.tensor(s.category_ids, dtype=torch.int64), "masks": masks,
                        "ga_maps": torch.from_numpy(np.stack([m.sanitised().to_dense() for m in maps]))
                        .float()})
    return images, targets


def _model(variant: str, size: int, predict_ga: bool = True):
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops import FrozenBatchNorm2d

    from gains.config import ModelConfig
    from gains.models.build import build_model

    if variant == "torchvision":  # stock torchvision heads, same backbone setting as ours (frozen BN, 3 stages)
        backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d,
                                       trainable_layers=3)
        return MaskRCNN(backbone, num_classes=3, min_size=size, max_size=size)
    cfg = ModelConfig(variant=variant, backbone="resnet50", norm="frozen_bn", min_size_train=[size],
                      min_size_test=size, max_size=size, predict_ga_maps=predict_ga)
    return build_model(cfg, 2)


def _step_fn(model, images, targets, mode: str, amp: str, device):
    import contextlib

    import torch

    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0, momentum=0.9)
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    ctx = torch.autocast(device.type, dtype=dtypes[amp]) if amp in dtypes else contextlib.nullcontext()

    def step() -> None:
        if mode == "train":
            model.train()
            with ctx:
                loss = sum(model(images, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()  # lr 0: the arithmetic of a step, the weights unchanged
        else:
            model.eval()
            with torch.no_grad(), ctx:
                model(images)
    return step


def _inputs(args: argparse.Namespace, device, variant: str):
    images, targets = _batch(args.size, args.batch)
    images = [i.to(device) for i in images]
    targets = [{k: v.to(device) for k, v in t.items() if variant != "torchvision" or k != "ga_maps"}
               for t in targets]
    return images, targets


def timing(args: argparse.Namespace, mode: str, amp: str, variants: list[tuple[str, bool]]) -> list[dict]:
    """Median step time of each variant, interleaved round by round in this process.

    Every model is built from the same seed (shared parts get identical weights), weights stay fixed
    (lr 0) and every round reseeds torch before each variant, so all variants see the same proposals and
    samples: the difference is the GA parts alone, and machine noise hits every variant alike.
    """
    import torch

    device = torch.device(args.device)
    runs = []
    for variant, no_ga in variants:
        torch.manual_seed(0)
        model = _model(variant, args.size, predict_ga=not no_ga).to(device)
        runs.append((variant, no_ga, _step_fn(model, *_inputs(args, device, variant), mode, amp, device), []))
    for r in range(args.warmup + args.steps):
        for _, _, step, times in runs:
            torch.manual_seed(r)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if r >= args.warmup:
                times.append(time.perf_counter() - t0)
    rows = []
    for variant, no_ga, _, times in runs:
        rows.append({"variant": variant, "mode": mode, "amp": amp, "no_ga": no_ga,
                     "median_s": statistics.median(times), "steps": len(times)})
        print(f"{variant:12s} {mode:6s} {amp:5s} {'no GA' if no_ga else '':6s} median {rows[-1]['median_s']:7.3f} s",
              flush=True)
    return rows


def child(args: argparse.Namespace) -> dict:
    """Peak memory of one variant's training step, alone in this process."""
    import torch

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = _model(args.variant, args.size).to(device)
    step = _step_fn(model, *_inputs(args, device, args.variant), "train", args.amp, device)
    for r in range(2):
        torch.manual_seed(r)
        step()
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else peak_rss_mib())
    return {"variant": args.variant, "amp": args.amp, "peak_mib": peak}


def peak(args: argparse.Namespace, variant: str, amp: str) -> dict:
    cmd = [sys.executable, "-m", __spec__.name, "--child", "--variant", variant, "--amp", amp, "--device", args.device,
           "--size", str(args.size), "--batch", str(args.batch)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    row = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"{variant:12s} peak ({amp}) {row['peak_mib']:8.0f} MiB", flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", type=Path, default=RESULTS / "bench_train.json")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="gains", help=argparse.SUPPRESS)
    p.add_argument("--amp", default="none", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    low = "bf16" if args.device == "cpu" else "fp16"
    amps = ["none", low]
    trio = [("torchvision", False), ("maskrcnn", False), ("gains", False)]
    rows = []
    for amp in amps:
        rows += timing(args, "train", amp, trio)
    rows += timing(args, "infer", "none", [("maskrcnn", False), ("gains", False), ("gains", True)])
    peaks = [peak(args, v, "none") for v in ("torchvision", "maskrcnn", "gains")]

    def pick(variant, mode, amp="none", no_ga=False):
        return next(r for r in rows if (r["variant"], r["mode"], r["amp"], r["no_ga"]) == (variant, mode, amp, no_ga))

    def mem(variant):
        return next(r["peak_mib"] for r in peaks if r["variant"] == variant)

    ratios = {
        "train_step_gains_over_maskrcnn": pick("gains", "train")["median_s"] / pick("maskrcnn", "train")["median_s"],
        "train_peak_gains_over_maskrcnn": mem("gains") / mem("maskrcnn"),
        "train_step_maskrcnn_over_torchvision": pick("maskrcnn", "train")["median_s"]
        / pick("torchvision", "train")["median_s"],
        "infer_gains_over_maskrcnn": pick("gains", "infer")["median_s"] / pick("maskrcnn", "infer")["median_s"],
        "infer_gains_noga_over_maskrcnn": pick("gains", "infer", no_ga=True)["median_s"]
        / pick("maskrcnn", "infer")["median_s"],
    }
    ratios[f"train_step_gains_{low}_over_fp32"] = pick("gains", "train", low)["median_s"] / pick(
        "gains", "train")["median_s"]
    ratios[f"train_step_gains_over_maskrcnn_{low}"] = pick("gains", "train", low)["median_s"] / pick(
        "maskrcnn", "train", low)["median_s"]
    print()
    for k, v in ratios.items():
        print(f"{k:40s} {v:6.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                                     "settings": {"device": args.device, "size": args.size, "batch": args.batch,
                                                  "steps": args.steps, "warmup": args.warmup},
                                     "rows": rows, "peaks": peaks, "ratios": ratios}, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
