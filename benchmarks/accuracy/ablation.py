"""GAInS against its Mask R-CNN baseline: identical data, schedule, backbone and seeds; paired statistics.

For every seed, trains ``gains`` and ``maskrcnn`` from the preset, evaluates both on the same held-out
split with every metric, and reports mean and standard deviation of segm/AP, segm/AP50, aji_gains, aji
and pq, plus the per-image paired difference (gains - maskrcnn) of each per-image metric with a
bootstrap 95% confidence interval and a two-sided sign test.

    .venv/bin/python -m benchmarks.accuracy.ablation --preset synthetic-overlap --seeds 0 1 2 \
        [--budget-minutes 45 | --iters N] [--device cpu|cuda]

``--budget-minutes M`` fits the whole job (both models, all seeds) into about M minutes: it times a short
probe of each variant, keeps 15% for evaluation, and sets the iteration count (the same for both models;
warm-up and LR steps scaled with it). Runs resume when their folder holds a run with the same settings.
With ``--equal-time`` (needs ``--budget-minutes``) each model gets the same training time instead of the
same iterations, as a user with a fixed CPU budget would run it: every run trains for the same
``train.max_minutes`` (what one run of the equal-iteration job would take), its LR schedule on the elapsed
fraction, so the cheaper baseline reaches more iterations; results go to ``<preset>-equal-time`` and the
report gives the iterations each model reached. ``--minutes M`` gives every run M minutes without a probe, so
that jobs from different starts (``--init``) get the same budget.

``--init NAME`` starts both variants from the same pretrained backbone, FPN and RPN (a shipped model such as
``nuclei`` or a checkpoint; the RoI heads are freshly initialised for both, so neither inherits the other's);
results go to ``<preset>-init-NAME``.

Presets (CPU variants; `--gpu` uses the reference GPU configs): synthetic-overlap, synthetic-touch,
synthetic-cross, synthetic-thin (generated), isbi2014 (../shared/data/isbi2014, fixed 30/15 split), dsb2018-cluster
(../shared/data/dsb2018 cluster proxy, split 6:2:2 seed 0). Real-data presets exit with a clear message
when ../shared/data is absent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from benchmarks.accuracy.harness import (
    SUMMARY,
    amp_used,
    choose_iterations,
    evaluate_run,
    job_arguments,
    mean_ga_weight,
    mean_std,
    paired,
    paired_rows,
    per_category,
    preset_config,
    reached_iterations,
    read_eval,
    run_config,
    run_minutes,
    spread,
    step_seconds,
    train_or_resume,
    with_iterations,
    with_time_budget,
)

VARIANTS = ("gains", "maskrcnn")
# --minutes without a probe: the iteration cap assumes no step is faster than this (a CPU preset step takes 1-3 s)
FASTEST_S_PER_ITER = 0.25
MATCHED = "gains-matched"  # GAInS with the mask-loss weight that gives it the baseline's mean mask-loss weight


def main() -> None:
    p = job_arguments(__doc__.splitlines()[0], [0, 1, 2], "ablation")
    p.add_argument("--equal-time", action="store_true",
                   help="same training time per model instead of same iterations (with --budget-minutes)")
    p.add_argument("--minutes", type=float, metavar="M",
                   help="equal time with a fixed budget: every run trains for M minutes (no probe; implies "
                   "--equal-time), so jobs of different starts (--init) get the same budget")
    p.add_argument("--init", metavar="NAME", help="start both variants from the backbone, FPN and RPN of a shipped "
                   "model or checkpoint (model.weights=NAME, model.weights_heads=false: fresh heads for both)")
    p.add_argument("--matched-arm", action="store_true",
                   help=f"a third model, {MATCHED}: GAInS with model.mask_loss_weight = 1 / (mean GA weight of "
                   "its mask-loss pixels on the training set), so its mean mask-loss weight equals the baseline's")
    p.add_argument("--report-only", action="store_true",
                   help="summarise finished runs from their eval/ folders (training time = sum of step times)")
    args = p.parse_args()
    if args.report_only and not (args.iters or args.minutes):
        p.error("--report-only needs --iters N or --minutes M, the budget of the finished runs")
    if args.minutes and (args.iters or args.budget_minutes):
        p.error("--minutes M sets each run's training time: leave out --iters and --budget-minutes")
    args.equal_time = args.equal_time or bool(args.minutes)
    if args.equal_time and not (args.budget_minutes or args.minutes):
        p.error("--equal-time needs --budget-minutes M (the probe sets each model's minutes) or --minutes M")
    if args.init:
        args.overrides = [*args.overrides, f"model.weights={args.init}", "model.weights_heads=false"]
    t_start = time.perf_counter()
    name, base = preset_config(args.preset, args.gpu, args.device, args.overrides, args.out / "data")
    init = f"-init-{Path(args.init).name}" if args.init else ""
    out = args.out / (args.preset + init + ("-equal-time" if args.equal_time else ""))
    arms: dict[str, tuple[str, list[str]]] = {v: (v, []) for v in VARIANTS}
    matched = None
    if args.matched_arm:
        matched = matched_weight(base, out / "_ga_weight")
        arms[MATCHED] = ("gains", [f"model.mask_loss_weight={matched['mask_loss_weight']:.4f}"])
    iters, probe = choose_iterations(args, {v: run_config(base, v, 0) for v in VARIANTS},
                                     len(args.seeds) * len(arms) / len(VARIANTS), out, t_start)
    if args.minutes:
        timed = with_time_budget(base, args.minutes, FASTEST_S_PER_ITER)
    elif args.equal_time:
        timed = with_time_budget(base, run_minutes(iters, probe), min(probe.values()))
    else:
        timed = with_iterations(base, iters) if iters else base
    reached: dict[str, list[int]] = {a: [] for a in arms}
    runs: dict[str, list[dict]] = {a: [] for a in arms}
    images: dict[str, list[dict]] = {a: [] for a in arms}
    train_s: dict[str, list[float]] = {a: [] for a in arms}
    for seed in args.seeds:
        for arm, (variant, extra) in arms.items():
            cfg = run_config(timed, variant, seed, extra)
            run = out / f"{arm}_s{seed}"
            if args.report_only:
                metrics, per_image = read_eval(run)
                train_s[arm].append(step_seconds(run))
            else:
                train_s[arm].append(train_or_resume(cfg, run))
                metrics, per_image = evaluate_run(cfg, run, args.device)
            reached[arm].append(reached_iterations(run))
            runs[arm].append(metrics)
            images[arm].append(per_image)
            print(f"{args.preset} seed {seed} {arm:13s} " + " ".join(f"{k} {metrics[k]:.4f}" for k in SUMMARY),
                  flush=True)
    table = {a: mean_std(runs[a]) for a in arms}
    categories = {a: per_category(runs[a]) for a in arms}
    diffs = paired(images["gains"], images["maskrcnn"])
    pairs = {f"{MATCHED} - maskrcnn": paired(images[MATCHED], images["maskrcnn"]),
             f"{MATCHED} - gains": paired(images[MATCHED], images["gains"])} if MATCHED in arms else {}
    wall = time.perf_counter() - t_start
    result = {"preset": args.preset, "config": name, "overrides": args.overrides, "seeds": args.seeds,
              "init": args.init, "iters": reached, "equal_time": args.equal_time,
              "max_minutes": timed.train.max_minutes, "amp": amp_used(base), "budget_minutes": args.budget_minutes,
              "matched": matched, "probe_s_per_iter": probe, "train_s": train_s, "wall_s": wall, "summary": table,
              "per_category": categories, "per_seed": runs, "paired_per_image": diffs, "paired_more": pairs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(result, indent=1))
    lines = report(args, name, base, timed, result, wall)
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def matched_weight(base, folder: Path) -> dict[str, float]:
    """The third arm's mask-loss weight: the baseline's 1.0 over the mean GA weight of GAInS's mask-loss
    pixels (``harness.mean_ga_weight`` on the training set), with the reference's 0.75 for comparison."""
    mean = mean_ga_weight(base, folder)
    return {"mean_ga_weight": round(mean, 4), "mask_loss_weight": round(1.0 / mean, 4),
            "reference_mean_weight": round(0.75 * mean, 4)}


def report(args, name: str, base, timed, result: dict, wall: float) -> list[str]:
    """The job's markdown: heading, training time, a column per model, per category, paired differences."""
    arms, table, categories = list(result["summary"]), result["summary"], result["per_category"]
    mean_train = {a: float(np.mean(t)) for a, t in result["train_s"].items()}
    its = {a: round(float(np.mean(n))) for a, n in result["iters"].items()}
    label = (f"equal training time {timed.train.max_minutes:.1f} min: "
             + ", ".join(f"{a} {its[a]}" for a in arms) + " iterations (mean over seeds)"
             if args.equal_time else f"{its['gains']} iterations")
    lines = [f"### {args.preset} ({name}, {label}, amp {result.get('amp', base.train.amp)}, "
             f"seeds {args.seeds}{', ' + ' '.join(args.overrides) if args.overrides else ''})", "",
             ("" if args.report_only else f"Whole job {wall / 60:.1f} min; ") + "training "
             + ", ".join(f"{mean_train[a]:.0f} s per {a} run" for a in arms)
             + (" (sum of step times)." if args.report_only else "."), ""]
    if result.get("matched"):
        m = result["matched"]
        lines += [f"{MATCHED}: mean GA weight of the mask-loss pixels on the training set {m['mean_ga_weight']:.3f},"
                  f" so the reference's 0.75 gives GAInS a mean mask-loss weight of {m['reference_mean_weight']:.3f};"
                  f" {MATCHED} uses {m['mask_loss_weight']:.3f} (mean weight 1.0, the baseline's).", ""]
    lines += ["| metric | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(spread(table[a][k]) for a in arms) + " |" for k in SUMMARY]
    if len(categories["gains"]) > 1:
        lines += ["", "| category | metric | " + " | ".join(arms) + " |", "|---" * (len(arms) + 2) + "|"]
        lines += [f"| {c} | {k} | " + " | ".join(spread(categories[a][c][k]) for a in arms) + " |"
                  for c in categories["gains"] for k in ("segm/AP", "aji_gains", "contact_iou")]
    for title, diffs in {"gains - maskrcnn": result["paired_per_image"], **result["paired_more"]}.items():
        lines += ["", f"| per-image paired difference ({title}) | mean | 95% CI | wins/losses | sign p |",
                  "|---|---|---|---|---|", *paired_rows(diffs)]
    return lines


if __name__ == "__main__":
    main()
