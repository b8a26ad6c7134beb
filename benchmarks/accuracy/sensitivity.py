"""GAMM hyper-parameter sensitivity: GAInS trained with one GAMM setting changed at a time, against the preset.

For a preset and its GAMM variant, trains GAInS with the preset's GAMM parameters ("preset") and with each
setting of the grid (one parameter changed from the preset, the rest as the preset), identical data,
schedule and seeds; evaluates every run on the same held-out split, and reports segm/AP, segm/AP50,
aji_gains, aji, pq per setting plus the per-image paired difference of aji_gains and aji against "preset"
(bootstrap 95% CI, sign test).

    .venv/bin/python -m benchmarks.accuracy.sensitivity --preset synthetic-overlap --seeds 0 \\
        [--budget-minutes 45 | --iters N] [--grid gamm.window_size=3,9 ...]

Default grid (per GAMM variant): window size below and above the README value, GA factor 0.25 / 0.4 and
2.0 (the README's range is [0.5, 2]), overlap highlight 0 and 0.5 (isbi, chrom; the nuclei variant never
applies it), and the centred window anchoring (``gamm.anchor=center``) against the reference's top-left.
``--grid`` replaces it; besides GAMM keys (``gamm.every_category=true``: maps for every category;
``gamm.zero_maps=keep``: the nuclei script's all-zero maps kept) it takes model keys such as
``model.mask_loss_weight=1.0``.

Noise floor: with one seed a setting's difference from "preset" mixes its effect with run-to-run
variation, so every job also trains the preset itself with another training seed (``NOISE``, seed
+ ``NOISE_SEED_OFFSET``) and reports its difference from "preset" beside the settings' differences.
Writes ``benchmarks/results/sensitivity/<preset>/sensitivity.{json,md}``; runs resume.
"""

from __future__ import annotations

import json
import time

from benchmarks.accuracy.harness import (
    SUMMARY,
    amp_used,
    choose_iterations,
    evaluate_run,
    job_arguments,
    mean_std,
    paired,
    preset_config,
    run_config,
    settings_paired_rows,
    train_or_resume,
    with_iterations,
)

GRIDS: dict[str, dict[str, list]] = {
    "isbi": {"gamm.window_size": [3, 9], "gamm.ga_factor": [0.25, 2.0], "gamm.overlap_hl": [0.0, 0.5],
             "gamm.anchor": ["center"]},
    "chrom": {"gamm.window_size": [3, 9], "gamm.ga_factor": [0.25, 2.0], "gamm.overlap_hl": [0.0, 0.6],
              "gamm.anchor": ["center"]},
    "nuclei": {"gamm.window_size": [5, 12], "gamm.ga_factor": [0.4, 2.0], "gamm.anchor": ["center"]},
}

NOISE, NOISE_SEED_OFFSET = "preset, another seed", 1000


def run_name(setting: str, seed: int) -> str:
    """Run folder of a setting and seed (the noise-floor run is the preset at its own seed)."""
    if setting == NOISE:
        return f"preset_s{seed + NOISE_SEED_OFFSET}"
    return f"{setting.replace('gamm.', '').replace('=', '_')}_s{seed}"


def parse_grid(items: list[str]) -> dict[str, list]:
    """``gamm.key=v1,v2`` (or ``model.key=...``, e.g. the mask-loss weight) strings -> {key: [v1, v2]} (values
    parsed as YAML)."""
    import yaml

    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.startswith(("gamm.", "model.")) or not values:
            raise SystemExit(f"--grid {item!r}: expected gamm.KEY=V1,V2 or model.KEY=V1,V2")
        grid[key] = [yaml.safe_load(v) for v in values.split(",")]
    return grid


def main() -> None:
    from gains.engine.train import gamm_params

    p = job_arguments(__doc__.splitlines()[0], [0], "sensitivity")
    p.add_argument("--grid", action="append", default=[], metavar="gamm.KEY=V1,V2",
                   help="replace the default grid (repeatable; model.KEY=... also, e.g. model.mask_loss_weight)")
    args = p.parse_args()
    t_start = time.perf_counter()
    name, base = preset_config(args.preset, args.gpu, args.device, args.overrides,
                               args.out.parent / "ablation" / "data")
    ref = gamm_params(base)
    grid = parse_grid(args.grid) if args.grid else GRIDS[ref.variant]
    settings = {"preset": [], NOISE: []} | {f"{k}={v}": [f"{k}={v}"] for k, values in grid.items() for v in values}
    out = args.out / args.preset
    iters, probe = choose_iterations(args, {"gains": run_config(base, "gains", 0)}, len(args.seeds) * len(settings),
                                     out, t_start)
    if iters:
        base = with_iterations(base, iters)
    runs: dict[str, list[dict]] = {s: [] for s in settings}
    images: dict[str, list[dict]] = {s: [] for s in settings}
    for seed in args.seeds:
        for setting, overrides in settings.items():
            cfg = run_config(base, "gains", seed + (NOISE_SEED_OFFSET if setting == NOISE else 0), overrides)
            run = out / run_name(setting, seed)
            train_or_resume(cfg, run)
            metrics, per_image = evaluate_run(cfg, run, args.device)
            runs[setting].append(metrics)
            images[setting].append(per_image)
            print(f"{args.preset} seed {seed} {setting:24s} " + " ".join(f"{k} {metrics[k]:.4f}" for k in SUMMARY),
                  flush=True)
    table = {s: mean_std(r) for s, r in runs.items()}
    diffs = {s: paired(images[s], images["preset"]) for s in settings if s != "preset"}
    wall = time.perf_counter() - t_start
    result = {"preset": args.preset, "config": name, "overrides": args.overrides, "seeds": args.seeds,
              "gamm_preset": ref.to_dict(), "grid": grid, "iters": base.train.max_iters, "amp": amp_used(base),
              "budget_minutes": args.budget_minutes, "probe_s_per_iter": probe, "wall_s": wall, "summary": table,
              "per_seed": runs, "paired_vs_preset": diffs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "sensitivity.json").write_text(json.dumps(result, indent=1))
    lines = [f"### GAMM sensitivity, {args.preset} ({name}, GAMM {ref.tag}, {base.train.max_iters} iterations, "
             f"seeds {args.seeds}; whole job {wall / 60:.1f} min)", "",
             "| setting | " + " | ".join(SUMMARY) + " |", "|---" * (len(SUMMARY) + 1) + "|"]
    lines += [f"| {s} | " + " | ".join(f"{t[k]['mean']:.4f}" for k in SUMMARY) + " |" for s, t in table.items()]
    lines += settings_paired_rows(diffs)
    (out / "sensitivity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
