"""Where a training step's time goes: forward and backward of each part of the model, in the regime of a
trained model (its RPN already finds the objects, so every image brings its full share of positive RoIs).

The step runs as in ``gains train`` (same preset, data pipeline, autocast and optimizer) except that the
graph is cut at three places so each backward can be timed alone: the FPN features, the RoIAlign outputs
of the box and mask heads, and the mask branch's (pooled, inner) features where the anomaly branch reads
them. Each cut is bridged by hand, so every gradient of the real step is computed once. Forward parts are
timed by wrapping the RoI heads' methods; the sum of the parts is checked against an uncut step timed on the
same batches.

    .venv/bin/python -m benchmarks.speed.profile_step --preset synthetic-overlap [--weights nuclei] [--steps 8]
        [--arm NAME:KEY=VALUE,...]... [--json OUT.json]

``--weights`` starts from a trained model (a zoo name or a checkpoint; fresh RoI heads unless ``--heads``) so
the positive-RoI count is that of a trained model rather than of step 0; ``--weights none`` profiles step 0.
Arms default to the preset's gains and maskrcnn.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.accuracy import harness

PARTS = ("data", "transform", "backbone+fpn fwd", "rpn fwd", "sampling", "box roialign fwd", "box head fwd",
         "mask roialign fwd", "mask branch fwd", "gt crops", "anomaly fwd", "losses+other fwd", "rpn bwd",
         "box head bwd", "anomaly bwd", "mask branch bwd", "roialign bwd", "backbone+fpn bwd", "optimizer")


class Timers:
    """Accumulated seconds per part name for the current step."""

    def __init__(self) -> None:
        self.now: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.now[name] += time.perf_counter() - t0
            return out
        return timed

    @contextlib.contextmanager
    def part(self, name: str):
        t0 = time.perf_counter()
        yield
        self.now[name] += time.perf_counter() - t0


def _detached(t):
    return t.detach().requires_grad_(True)


def profiled_step(model, optimizer, imgs, targets, autocast, timers: Timers, clip: float) -> dict[str, float]:
    """One training step cut into timed parts; returns the loss terms (floats)."""
    import torch

    import gains.models.roi_heads as rh

    heads = model.roi_heads
    bridges: list[tuple] = []  # (tensor in the mask graph, its detached stand-in read by the anomaly branch)
    pooled_cuts: list[tuple] = []  # (RoIAlign output, its detached stand-in read by the box / mask head)

    def cut_pool(pool, name):
        def run(*args):
            t0 = time.perf_counter()
            out = pool(*args)
            timers.now[name] += time.perf_counter() - t0
            stand_in = _detached(out)
            pooled_cuts.append((out, stand_in))
            return stand_in
        return run

    def forward_ga(pooled, inner):
        p, i = _detached(pooled), _detached(inner)
        bridges.extend([(pooled, p), (inner, i)])
        return orig_ga(p, i)

    orig_ga = heads._forward_ga
    saved = {k: getattr(heads, k) for k in ("_forward_box", "_forward_mask", "select_training_samples",
                                            "box_roi_pool", "mask_roi_pool")}
    heads._modules["box_roi_pool"] = cut_pool(saved["box_roi_pool"], "box roialign fwd")  # plain callables
    heads._modules["mask_roi_pool"] = cut_pool(saved["mask_roi_pool"], "mask roialign fwd")
    heads._forward_box = timers.wrap("box head fwd", saved["_forward_box"])
    heads._forward_mask = timers.wrap("mask branch fwd", saved["_forward_mask"])
    heads.select_training_samples = timers.wrap("sampling", saved["select_training_samples"])
    heads._forward_ga = timers.wrap("anomaly fwd", forward_ga)
    crop = rh.crop_to_rois
    rh.crop_to_rois = timers.wrap("gt crops", crop)
    try:
        with autocast:
            with timers.part("transform"):
                images, targets = model.transform(imgs, targets)
            with timers.part("backbone+fpn fwd"):
                features = model.backbone(images.tensors)
            cut = {k: _detached(v) for k, v in features.items()}
            with timers.part("rpn fwd"):
                proposals, rpn_losses = model.rpn(images, cut, targets)
            t0 = time.perf_counter()
            _, head_losses = heads(cut, proposals, images.image_sizes, targets)
            inside = sum(timers.now[k] for k in ("box head fwd", "mask branch fwd", "sampling", "anomaly fwd",
                                                 "gt crops"))
            timers.now["box head fwd"] -= timers.now["box roialign fwd"]
            timers.now["mask branch fwd"] -= timers.now["mask roialign fwd"]
            timers.now["losses+other fwd"] += time.perf_counter() - t0 - inside
    finally:
        for k, v in saved.items():
            if k.endswith("_pool"):
                heads._modules[k] = v
            else:
                setattr(heads, k, v)
        heads._forward_ga = orig_ga
        rh.crop_to_rois = crop
    losses = {**rpn_losses, **head_losses}
    optimizer.zero_grad(set_to_none=True)
    with timers.part("rpn bwd"):
        sum(rpn_losses.values()).backward()
    with timers.part("box head bwd"):
        (head_losses["loss_classifier"] + head_losses["loss_box_reg"]).backward()
    if "loss_ga" in head_losses:
        with timers.part("anomaly bwd"):
            head_losses["loss_ga"].backward()
    with timers.part("mask branch bwd"):
        outs = [head_losses["loss_mask"]] + [a for a, b in bridges]
        grads = [torch.ones_like(head_losses["loss_mask"])] + [b.grad.to(a.dtype) for a, b in bridges]
        torch.autograd.backward(outs, grads)
    with timers.part("roialign bwd"):
        torch.autograd.backward([a for a, b in pooled_cuts if b.grad is not None],
                                [b.grad for a, b in pooled_cuts if b.grad is not None])
    with timers.part("backbone+fpn bwd"):
        names = [k for k in features if cut[k].grad is not None]
        torch.autograd.backward([features[k] for k in names], [cut[k].grad for k in names])
    with timers.part("optimizer"):
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
    return {k: float(v.detach()) for k, v in losses.items()}


def profile_arm(preset: str, weights: str, overrides: list[str], warmup: int, steps: int, heads: bool = False
                ) -> dict:
    """Median seconds per part over ``steps`` steps (after ``warmup``) of one arm, the uncut step time and the
    positive RoIs per step."""
    import torch

    from gains.data.dataset import collate
    from gains.engine.schedule import build_optimizer
    from gains.engine.step import autocast, resolve_amp, train_step
    from gains.engine.train import build_train_dataset, resolve_data, with_test_scale
    from gains.models.build import build_model
    from gains.models.weights import load_weights

    with tempfile.TemporaryDirectory(prefix="gains_profile_") as tmp:
        run = Path(tmp)
        _, cfg = harness.preset_config(preset, False, "cpu", [f"model.weights={weights}",
                                                             f"model.weights_heads={str(heads).lower()}",
                                                             *overrides], harness.BENCH_DATA)
        torch.manual_seed(0)
        train_json, _, images = resolve_data(cfg, run)
        cfg = with_test_scale(cfg, train_json)
        data = build_train_dataset(cfg, train_json, images, run)
        model = build_model(cfg.model, len(data.category_to_label))
        load_weights(model, cfg.model.weights, cfg.model.backbone, cfg.model.weights_heads)
        model.train()
        opt = build_optimizer(model, 1e-4, cfg.train.momentum, cfg.train.weight_decay, cfg.train.weight_decay_norm)
        device, bs = torch.device("cpu"), cfg.train.batch_size
        amp = resolve_amp(cfg.train.amp, device)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0)).tolist()
        rows, plain = [], []
        for s in range(warmup + steps):
            timers = Timers()
            idx = [order[(s * bs + k) % len(order)] for k in range(bs)]
            with timers.part("data"):
                imgs, targets = collate([data[i] for i in idx])
            torch.manual_seed(s)
            profiled_step(model, opt, imgs, targets, autocast(amp, device), timers, cfg.train.clip_grad_norm)
            torch.manual_seed(s)
            t0 = time.perf_counter()
            train_step(model, opt, imgs, targets, amp, cfg.train.clip_grad_norm)
            if s >= warmup:
                rows.append(dict(timers.now))
                plain.append(time.perf_counter() - t0)
    median = {k: statistics.median(r.get(k, 0.0) for r in rows) for k in PARTS}
    return {"overrides": overrides, "variant": cfg.model.variant,
            "median_s": {k: round(v, 4) for k, v in median.items()},
            "parts_step_s": round(sum(v for k, v in median.items() if k != "data"), 4),
            "plain_step_s": round(statistics.median(plain), 4)}


def table(arms: dict[str, dict]) -> list[str]:
    """Markdown: one row per part, one column per arm (seconds and share of the uncut step)."""
    names = list(arms)
    lines = ["| part | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k in PARTS:
        cells = [f"{a['median_s'][k]:.3f} ({100 * a['median_s'][k] / a['parts_step_s']:.0f}%)" for a in arms.values()]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append("| sum of parts (no data) | " + " | ".join(f"{a['parts_step_s']:.3f}" for a in arms.values()) + " |")
    lines.append("| uncut step | " + " | ".join(f"{a['plain_step_s']:.3f}" for a in arms.values()) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(harness.PRESETS), required=True)
    p.add_argument("--weights", default="nuclei", help="trained start (zoo name or checkpoint); 'none' for step 0")
    p.add_argument("--heads", action="store_true", help="also load the RoI heads from --weights (a checkpoint of "
                   "the same preset: the step of that model as it was trained)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--arm", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                   help="a named set of overrides (repeatable; default: the preset's gains and maskrcnn)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    import torch

    arms = dict(harness.parse_arm(a) for a in (args.arm or ["gains:model.variant=gains",
                                                             "maskrcnn:model.variant=maskrcnn"]))
    result = {"preset": args.preset, "weights": args.weights, "heads": args.heads, "steps": args.steps,
              "torch": torch.__version__, "threads": torch.get_num_threads(), "arms": {}}
    for name, sets in arms.items():
        result["arms"][name] = profile_arm(args.preset, args.weights, sets, args.warmup, args.steps,
                                             args.heads)
        print(f"{name}: uncut step {result['arms'][name]['plain_step_s']:.3f} s", file=sys.stderr)
    print("\n".join(table(result["arms"])))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
