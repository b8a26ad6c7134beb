"""GAInS against its Mask R-CNN baseline: identical data, schedule, backbone and seeds; paired statistics.

For every seed, trains ``gains`` and ``maskrcnn`` from the preset, evaluates both on the same held-out
split with every metric, and reports mean and standard deviation of segm/AP, segm/AP50, aji_gains, aji
and pq, plus the per-image paired difference (gains - maskrcnn) of each per-image metric with a
bootstrap 95% confidence interval and a two-sided sign test.

    .venv/bin/python benchmarks/ablation.py --preset synthetic-overlap --seeds 0 1 2 \
        [--budget-minutes 45 | --iters N] [--device cpu|cuda]

``--budget-minutes M`` fits the whole job (both models, all seeds) into about M minutes: it times a short
probe of each variant, keeps 15% for evaluation, and sets the iteration count (the same for both models;
warm-up and LR steps scaled with it). Runs resume when their folder holds a run with the same settings.

Presets (CPU variants; `--gpu` uses the reference GPU configs): synthetic-overlap, synthetic-touch,
synthetic-cross (generated), isbi2014 (../shared/data/isbi2014, fixed 30/15 split), dsb2018-cluster
(../shared/data/dsb2018 cluster proxy, split 6:2:2 seed 0). Real-data presets exit with a clear message
when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GAINS_SHARED", ROOT.parent / "shared"))
PRESETS = {"synthetic-overlap": "synthetic_overlap", "synthetic-touch": "synthetic_touch",
           "synthetic-cross": "synthetic_cross", "isbi2014": "isbi2014", "dsb2018-cluster": "dsb2018_cluster"}
SUMMARY = ("segm/AP", "segm/AP50", "aji_gains", "aji", "pq")
PAIRED = ("aji_gains", "aji", "aji_plus", "pq", "f1_50", "dsb_score")
PROBE_ITERS, EVAL_RESERVE = 16, 0.15


def prepare_real_data(preset: str, cache: Path) -> list[str]:
    """Convert and split the shared data once into ``cache``; returns the --set overrides pointing at it."""
    from gains.data.dsb2018 import convert_dsb2018
    from gains.data.isbi2014 import convert_isbi2014
    from gains.data.split import split_dataset

    if preset == "isbi2014":
        src = SHARED / "data" / "isbi2014"
        if not src.is_dir():
            raise SystemExit(f"{src}: not available; the isbi2014 preset needs the shared data")
        folder = cache / "isbi2014"
        if not (folder / "test.json").exists():
            convert_isbi2014(src / "train_images", src / "isbi_train_GT.mat", folder, overwrite=True)
            split_dataset(folder, preset="isbi2014-30-15")
    else:
        src = SHARED / "data" / "dsb2018"
        if not src.is_dir():
            raise SystemExit(f"{src}: not available; the dsb2018-cluster preset needs the shared data")
        folder = cache / "dsb2018_cluster"
        if not (folder / "test.json").exists():
            convert_dsb2018(src / "stage1_train", folder, subset=src / "cluster_nuclei_proxy.txt", workers=2,
                            overwrite=True, progress=False)
            split_dataset(folder, (6, 2, 2), seed=0)
    return [f"data.train={folder / 'train.json'}", f"data.val={folder / 'val.json'}",
            f"data.test={folder / 'test.json'}"]


def schedule_overrides(base, iters: int) -> list[str]:
    """Overrides that set ``iters`` iterations, scaling the LR steps and capping warm-up; one eval at the end."""
    scale = iters / base.train.max_iters
    steps = [max(1, int(s * scale)) for s in base.train.steps]
    warmup = min(base.train.warmup_iters, iters)
    return [f"train.max_iters={iters}", f"train.steps={steps}", f"train.warmup_iters={warmup}",
            f"train.eval_period={iters}", f"train.checkpoint_period={iters}"]


def variant_config(base, variant: str, seed: int):
    """``base`` with another model variant and training seed (the data and its seed stay the same)."""
    from gains.config import config_from_dict, config_to_dict

    d = config_to_dict(base)
    d["train"]["seed"], d["model"]["variant"] = seed, variant
    return config_from_dict(d)


def seconds_per_iteration(base, folder: Path) -> dict[str, float]:
    """Median step time of each variant over a short probe (its first 4 steps dropped)."""
    from gains.config import apply_overrides
    from gains.engine.train import fit

    probe = apply_overrides(base, [f"train.max_iters={PROBE_ITERS}", "train.eval_period=0",
                                   "train.checkpoint_period=0"])
    out = {}
    for variant in ("gains", "maskrcnn"):
        run = folder / variant
        shutil.rmtree(run, ignore_errors=True)
        fit(variant_config(probe, variant, 0), run, progress=False)
        times = [r["time"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "time" in r]
        out[variant] = statistics.median(times[4:])
    shutil.rmtree(folder, ignore_errors=True)
    return out


def train_or_resume(cfg, run: Path) -> float:
    """Train ``cfg`` into ``run`` (resuming a run with the same settings, restarting one with others);
    returns the training wall time in seconds."""
    from gains.config import config_changes, config_to_dict
    from gains.engine.checkpoint import load_checkpoint
    from gains.engine.train import fit

    last = run / "last.pt"
    if last.exists() and config_changes(load_checkpoint(last)["config"], config_to_dict(cfg)):
        shutil.rmtree(run)
    t0 = time.perf_counter()
    fit(cfg, run, resume=True, progress=False)
    return time.perf_counter() - t0


def per_image(csv_path: Path) -> dict[tuple[str, str], dict[str, float]]:
    with open(csv_path) as fh:
        return {(r["image_id"], r["category"]): {k: float(r[k]) for k in PAIRED} for r in csv.DictReader(fh)}


def main() -> None:
    from gains.config import apply_overrides, load_config
    from gains.evaluation.paired import paired_stats
    from gains.inference.eval_run import evaluate_checkpoint

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--iters", type=int, help="override train.max_iters (LR steps scaled with it)")
    budget.add_argument("--budget-minutes", type=float, help="choose the iterations so the whole job takes ~M minutes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--gpu", action="store_true", help="the reference GPU preset instead of the CPU one")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ablation")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    t_start = time.perf_counter()
    name = PRESETS[args.preset] + ("" if args.gpu else "_cpu")
    overrides = [f"train.device={args.device}", *args.overrides]
    if not args.preset.startswith("synthetic"):
        overrides = prepare_real_data(args.preset, args.out / "data") + overrides
    base = load_config(ROOT / "configs" / f"{name}.yaml", overrides)
    out = args.out / args.preset
    probe = None
    iters = args.iters
    if args.budget_minutes:
        probe = seconds_per_iteration(base, out / "_probe")
        left = args.budget_minutes * 60 - (time.perf_counter() - t_start)
        iters = int(left * (1 - EVAL_RESERVE) / (len(args.seeds) * sum(probe.values())))
        if iters < 10:
            raise SystemExit(f"--budget-minutes {args.budget_minutes}: too short ({sum(probe.values()):.2f} s per "
                             f"gains + maskrcnn step pair, {len(args.seeds)} seeds)")
        print(f"{args.preset}: probe {probe['gains']:.2f} s/it gains, {probe['maskrcnn']:.2f} s/it maskrcnn "
              f"-> {iters} iterations per run", flush=True)
    if iters:
        base = apply_overrides(base, schedule_overrides(base, iters))
    runs: dict[str, list[dict]] = {"gains": [], "maskrcnn": []}
    images: dict[str, list[dict]] = {"gains": [], "maskrcnn": []}
    train_s: dict[str, list[float]] = {"gains": [], "maskrcnn": []}
    for seed in args.seeds:
        for variant in ("gains", "maskrcnn"):
            cfg = variant_config(base, variant, seed)
            run = out / f"{variant}_s{seed}"
            train_s[variant].append(train_or_resume(cfg, run))
            if cfg.data.synthetic:
                data, split = run / "data" / "val", "all"
            else:
                data, split = Path(cfg.data.test).parent, "test"
            metrics = evaluate_checkpoint(run / "last.pt", data, split, run / "eval", device=args.device)
            runs[variant].append(metrics)
            images[variant].append(per_image(run / "eval" / "METRICS_per_image.csv"))
            print(f"{args.preset} seed {seed} {variant:8s} " + " ".join(f"{k} {metrics[k]:.4f}" for k in SUMMARY),
                  flush=True)
    table = {v: {k: {"mean": float(np.mean([m[k] for m in runs[v]])), "std": float(np.std([m[k] for m in runs[v]]))}
                 for k in SUMMARY} for v in runs}
    paired = {}
    for k in PAIRED:
        diffs = [a[key][k] - b[key][k] for a, b in zip(images["gains"], images["maskrcnn"], strict=True)
                 for key in a if key in b and not (math.isnan(a[key][k]) or math.isnan(b[key][k]))]
        paired[k] = paired_stats(np.asarray(diffs)) if diffs else {}
    wall = time.perf_counter() - t_start
    result = {"preset": args.preset, "config": name, "overrides": args.overrides, "seeds": args.seeds,
              "iters": base.train.max_iters, "amp": base.train.amp, "budget_minutes": args.budget_minutes,
              "probe_s_per_iter": probe, "train_s": train_s, "wall_s": wall, "summary": table,
              "paired_per_image": paired}
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(result, indent=1))
    mean_train = {v: float(np.mean(t)) for v, t in train_s.items()}
    lines = [f"### {args.preset} ({name}, {base.train.max_iters} iterations, amp {base.train.amp}, "
             f"seeds {args.seeds}{', ' + ' '.join(args.overrides) if args.overrides else ''})", "",
             f"Whole job {wall / 60:.1f} min; training {mean_train['gains']:.0f} s per gains run, "
             f"{mean_train['maskrcnn']:.0f} s per maskrcnn run.", "",
             "| metric | gains | maskrcnn |", "|---|---|---|"]
    lines += [f"| {k} | {table['gains'][k]['mean']:.4f} ± {table['gains'][k]['std']:.4f} | "
              f"{table['maskrcnn'][k]['mean']:.4f} ± {table['maskrcnn'][k]['std']:.4f} |" for k in SUMMARY]
    lines += ["", "| per-image paired difference (gains - maskrcnn) | mean | 95% CI | wins/losses | sign p |",
              "|---|---|---|---|---|"]
    lines += [f"| {k} | {s['mean']:+.4f} | [{s['ci_low']:+.4f}, {s['ci_high']:+.4f}] | {s['wins']}/{s['losses']} | "
              f"{s['sign_p']:.3g} |" for k, s in paired.items() if s]
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
