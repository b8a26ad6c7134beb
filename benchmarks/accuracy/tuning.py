"""CPU preset tuning: which settings make GAInS learn the most in the same training time per run.

For a preset, trains GAInS with the preset as it is and with each candidate setting (a named set of
overrides), every run given the same training wall time: a short probe times each setting's step, and its
iteration count is ``minutes * 60 / (probe * LATE_STEP_FACTOR)`` (LR steps and warm-up scaled with it). So a
setting that makes steps cheaper trains for more iterations, as it would in a budgeted job. Every run is
evaluated on the preset's held-out split; the report gives, per setting (mean ± std over seeds), iterations,
training wall minutes, segm/AP, segm/AP50, aji_gains, aji, pq and segm/AP per category, and the per-image
paired difference of aji_gains and aji against the preset (bootstrap 95% CI, sign test).

    .venv/bin/python -m benchmarks.accuracy.tuning --preset isbi2014 --seeds 0 1 --minutes-per-run 4.5 \\
        [--setting 'NAME=KEY=VALUE;KEY=VALUE' ...] [--variant gains|maskrcnn]

``--iters N`` instead of ``--minutes-per-run`` trains every setting for the same N iterations (no probe):
an accuracy A/B of settings that change speed, at equal training.

Default candidates (from the preset's own values): input images 0.75x and 1.33x, anchors a quarter of the
preset's (only where its smallest anchor is 16 px or more), ``ga_rois_per_image`` 8 and 64, and 64 sampled
RoIs per image for the box head. Writes ``benchmarks/results/tuning/<preset>/tuning.{json,md}``; runs and
probes resume.
"""

from __future__ import annotations

import json
import re
import time

from benchmarks.accuracy.harness import (
    LATE_STEP_FACTOR,
    SUMMARY,
    evaluate_run,
    job_arguments,
    mean_std,
    paired,
    per_category,
    preset_config,
    run_config,
    seconds_per_iteration,
    settings_paired_rows,
    spread,
    train_or_resume,
    with_iterations,
)
from gains.config import Config, config_to_dict

PRESET = "preset"


def _sizes(values: list[int], factor: float) -> list[int]:
    """Image sizes scaled by ``factor``, rounded to multiples of 32."""
    return [max(32, round(v * factor / 32) * 32) for v in values]


def candidates(base: Config) -> dict[str, list[str]]:
    """The default candidate settings of a preset, as overrides computed from its own values."""
    m = base.model
    out = {}
    for label, f in (("images x0.75", 0.75), ("images x1.33", 4 / 3)):
        out[label] = [f"model.min_size_train={_sizes(m.min_size_train, f)}",
                      f"model.min_size_test={_sizes([m.min_size_test], f)[0]}",
                      f"model.max_size={_sizes([m.max_size], f)[0]}"]
    if min(m.anchor_sizes) >= 16:
        out["anchors /4"] = [f"model.anchor_sizes={[a // 4 for a in m.anchor_sizes]}"]
    out["ga_rois_per_image 8"] = ["model.ga_rois_per_image=8"]
    out["ga_rois_per_image 64"] = ["model.ga_rois_per_image=64"]
    out["box RoIs 64"] = ["model.box_batch_size_per_image=64"]
    return out


def parse_setting(item: str) -> tuple[str, list[str]]:
    """``NAME=KEY=VALUE;KEY=VALUE`` -> (NAME, [KEY=VALUE, ...])."""
    name, sep, rest = item.partition("=")
    overrides = [o.strip() for o in rest.split(";") if o.strip()]
    if not sep or not name or not overrides or not all("=" in o for o in overrides):
        raise SystemExit(f"--setting {item!r}: expected NAME=KEY=VALUE;KEY=VALUE")
    return name, overrides


def slug(name: str) -> str:
    """A folder-safe form of a setting name."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", name).strip("_")


def probe_seconds(configs: dict[str, Config], folder) -> dict[str, float]:
    """Probe seconds per iteration of each setting, kept in ``folder/probe.json`` beside the config probed
    (a setting whose config changed is probed again)."""
    saved = folder / "probe.json"
    known = json.loads(saved.read_text()) if saved.exists() else {}
    todo = {k: c for k, c in configs.items() if known.get(k, {}).get("config") != config_to_dict(c)}
    for k, s in seconds_per_iteration(todo, folder / "_probe").items():
        known[k] = {"config": config_to_dict(todo[k]), "s_per_iter": s}
        print(f"probe {k}: {s:.2f} s/it", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(known, indent=1))
    return {k: known[k]["s_per_iter"] for k in configs}


def main() -> None:
    p = job_arguments(__doc__.splitlines()[0], [0, 1], "tuning", budget=False)
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--minutes-per-run", type=float, help="training wall time of every run")
    length.add_argument("--iters", type=int, help="the same iterations for every setting instead (no probe)")
    p.add_argument("--variant", choices=("gains", "maskrcnn"), default="gains")
    p.add_argument("--setting", action="append", default=[], metavar="NAME=KEY=VALUE;KEY=VALUE",
                   help="replace the default candidates (repeatable)")
    args = p.parse_args()
    t_start = time.perf_counter()
    name, base = preset_config(args.preset, args.gpu, args.device, args.overrides,
                               args.out.parent / "ablation" / "data")
    settings = {PRESET: []} | (dict(map(parse_setting, args.setting)) if args.setting else candidates(base))
    out = args.out / args.preset
    if args.iters:
        probe, iters = dict.fromkeys(settings), dict.fromkeys(settings, args.iters)
    else:
        probe = probe_seconds({s: run_config(base, args.variant, 0, o) for s, o in settings.items()}, out)
        iters = {s: int(args.minutes_per_run * 60 / (probe[s] * LATE_STEP_FACTOR)) for s in settings}
    runs: dict[str, list[dict]] = {s: [] for s in settings}
    images: dict[str, list[dict]] = {s: [] for s in settings}
    train_s: dict[str, list[float]] = {s: [] for s in settings}
    for seed in args.seeds:
        for setting, overrides in settings.items():
            cfg = with_iterations(run_config(base, args.variant, seed, overrides), iters[setting])
            run = out / f"{slug(setting)}_s{seed}"
            train_s[setting].append(train_or_resume(cfg, run))
            metrics, per_image = evaluate_run(cfg, run, args.device)
            runs[setting].append(metrics)
            images[setting].append(per_image)
            print(f"{args.preset} seed {seed} {setting:22s} {iters[setting]:5d} it " +
                  " ".join(f"{k} {metrics[k]:.4f}" for k in SUMMARY), flush=True)
    table = {s: mean_std(r) for s, r in runs.items()}
    categories = {s: per_category(r) for s, r in runs.items()}
    diffs = {s: paired(images[s], images[PRESET]) for s in settings if s != PRESET}
    wall = time.perf_counter() - t_start
    result = {"preset": args.preset, "config": name, "overrides": args.overrides, "seeds": args.seeds,
              "minutes_per_run": args.minutes_per_run, "variant": args.variant, "settings": settings,
              "probe_s_per_iter": probe,
              "iters": iters, "train_s": train_s, "wall_s": wall, "summary": table, "per_category": categories,
              "per_seed": runs, "paired_vs_preset": diffs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "tuning.json").write_text(json.dumps(result, indent=1))
    cats = sorted({c for per in categories.values() for c in per})
    length = f"{args.iters} iterations" if args.iters else f"{args.minutes_per_run:g} min of training"
    lines = [f"### {'Equal-iteration' if args.iters else 'Equal-time'} tuning, {args.preset} ({name}, {args.variant}, "
             f"{length} per run, seeds {args.seeds}; whole job {wall / 60:.1f} min)", "",
             "| setting | probe s/it | iterations | train min | " + " | ".join(SUMMARY)
             + "".join(f" | {c} segm/AP" for c in cats) + " |", "|---" * (len(SUMMARY) + len(cats) + 4) + "|"]
    for s, t in table.items():
        cells = [spread(t[k]) for k in SUMMARY] + [
            spread(categories[s][c]["segm/AP"]) if c in categories[s] else "-" for c in cats]
        minutes = sum(train_s[s]) / len(train_s[s]) / 60
        probed = "-" if probe[s] is None else f"{probe[s]:.2f}"
        lines.append(f"| {s} | {probed} | {iters[s]} | {minutes:.1f} | " + " | ".join(cells) + " |")
    lines += settings_paired_rows(diffs)
    (out / "tuning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
