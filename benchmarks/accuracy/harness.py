"""Shared parts of the accuracy benchmarks (``ablation.py``, ``sensitivity.py``): presets, data preparation,
budgeted schedules, resumable runs, held-out evaluation and paired per-image statistics."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import RESULTS, ROOT
from gains.config import Config, apply_overrides, config_changes, config_from_dict, config_to_dict, load_config

SHARED = Path(os.environ.get("GAINS_SHARED", ROOT.parent / "shared"))
PRESETS = {"synthetic-overlap": "synthetic_overlap", "synthetic-touch": "synthetic_touch",
           "synthetic-cross": "synthetic_cross", "synthetic-thin": "synthetic_thin", "isbi2014": "isbi2014",
           "dsb2018-cluster": "dsb2018_cluster"}
SUMMARY = ("segm/AP", "segm/AP50", "aji_gains", "aji", "pq", "contact_iou", "contact_recall50")
PAIRED = ("aji_gains", "aji", "aji_plus", "pq", "f1_50", "dsb_score", "contact_iou", "contact_recall50")
PROBE_ITERS, EVAL_RESERVE = 16, 0.15
# Steps after the first few dozen cost more than the probe's (more positive RoIs reach the mask and anomaly
# branches as the RPN learns): on synthetic-overlap (2026-11-27) 1.42x the probe for gains and 1.12x for
# maskrcnn, 1.28x for the pair; the budget plans with this factor.
LATE_STEP_FACTOR = 1.3
BENCH_DATA = Path(tempfile.gettempdir()) / "gains_bench_data"  # real data converted once for the speed benchmarks


def job_arguments(description: str, seeds: list[int], out: str, budget: bool = True) -> argparse.ArgumentParser:
    """The options every accuracy job takes: preset, seeds, budget (iterations or minutes; unless ``budget`` is
    False), device, GPU preset, output folder (``benchmarks/results/<out>``) and ``--set`` overrides."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--preset", choices=sorted(PRESETS), required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=seeds)
    if budget:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--iters", type=int, help="override train.max_iters (LR steps scaled with it)")
        group.add_argument("--budget-minutes", type=float,
                           help="choose the iterations so the whole job takes ~M minutes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--gpu", action="store_true", help="the reference GPU preset instead of the CPU one")
    p.add_argument("--out", type=Path, default=RESULTS / out)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p


def parse_arm(text: str) -> tuple[str, list[str]]:
    """``NAME:KEY=VALUE,KEY=VALUE`` (a named set of ``--set`` overrides) -> (NAME, [KEY=VALUE, ...])."""
    name, _, sets = text.partition(":")
    if not name or any("=" not in s for s in sets.split(",") if s):
        raise SystemExit(f"--arm {text!r}: expected NAME:KEY=VALUE,...")
    return name, [s for s in sets.split(",") if s]


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


def preset_config(preset: str, gpu: bool, device: str, overrides: list[str], data_cache: Path) -> tuple[str, Config]:
    """(config name, Config) of a preset: the CPU variant unless ``gpu``; real data converted into ``data_cache``."""
    name = PRESETS[preset] + ("" if gpu else "_cpu")
    extra = [f"train.device={device}", *overrides]
    if not preset.startswith("synthetic"):
        extra = prepare_real_data(preset, data_cache) + extra
    return name, load_config(name, extra)


def amp_used(cfg: Config) -> str:
    """The autocast mode ``cfg``'s runs use on this machine (``train.amp`` with "auto" resolved)."""
    from gains.core.parallel import resolve_device
    from gains.engine.step import resolve_amp

    return resolve_amp(cfg.train.amp, resolve_device(cfg.train.device))


def with_iterations(base: Config, iters: int) -> Config:
    """``base`` trained for ``iters`` iterations: LR steps scaled, warm-up capped, one eval and save at the end."""
    scale = iters / base.train.max_iters
    steps = [max(1, int(s * scale)) for s in base.train.steps]
    warmup = min(base.train.warmup_iters, iters)
    return apply_overrides(base, [f"train.max_iters={iters}", f"train.steps={steps}", f"train.warmup_iters={warmup}",
                                  f"train.eval_period={iters}", f"train.checkpoint_period={iters}"])


def run_config(base: Config, variant: str, seed: int, overrides: list[str] = ()) -> Config:
    """``base`` with another model variant, training seed and overrides (the data and its seed stay the same)."""
    d = config_to_dict(apply_overrides(base, list(overrides)))
    d["train"]["seed"], d["model"]["variant"] = seed, variant
    return config_from_dict(d)


def seconds_per_iteration(configs: dict[str, Config], folder: Path) -> dict[str, float]:
    """Median step time of each named config over a short probe (its first 4 steps dropped)."""
    from gains.engine.train import fit

    out = {}
    for name, cfg in configs.items():
        run = folder / name
        shutil.rmtree(run, ignore_errors=True)
        fit(apply_overrides(cfg, [f"train.max_iters={PROBE_ITERS}", "train.eval_period=0",
                                  "train.checkpoint_period=0"]), run, progress=False)
        out[name] = statistics.median(step_times(run)[4:])
    shutil.rmtree(folder, ignore_errors=True)
    return out


def budget_iterations(minutes: float, elapsed_s: float, seconds_per_round: float) -> int:
    """Iterations per run so that rounds of runs costing ``seconds_per_round`` per probed iteration (times
    ``LATE_STEP_FACTOR``) fit in ``minutes``, less what was already spent, less ``EVAL_RESERVE`` for evaluation."""
    iters = int((minutes * 60 - elapsed_s) * (1 - EVAL_RESERVE) / (seconds_per_round * LATE_STEP_FACTOR))
    if iters < 10:
        raise SystemExit(f"--budget-minutes {minutes}: too short ({seconds_per_round:.2f} s per iteration of all "
                         "runs together)")
    return iters


def choose_iterations(args: argparse.Namespace, probes: dict[str, Config], runs_per_probe: int, out: Path,
                      t_start: float) -> tuple[int | None, dict[str, float] | None]:
    """(iterations per run, probe seconds per iteration) for a job: ``--iters`` as given; for
    ``--budget-minutes``, the probe of ``probes`` with the budget split over ``runs_per_probe`` runs of each.
    The choice is kept in ``out/budget.json`` so that a job run again with the same options and preset configs
    resumes its runs instead of probing again (and perhaps choosing another count); a changed preset probes
    again."""
    if not args.budget_minutes:
        return args.iters, None
    configs = json.dumps({k: config_to_dict(c) for k, c in sorted(probes.items())}, sort_keys=True)
    key = {"budget_minutes": args.budget_minutes, "seeds": args.seeds, "overrides": args.overrides,
           "gpu": args.gpu, "device": args.device, "probes": sorted(probes), "runs_per_probe": runs_per_probe,
           "configs_sha256": hashlib.sha256(configs.encode()).hexdigest()}
    saved = out / "budget.json"
    if saved.exists() and json.loads(saved.read_text())["key"] == key:
        chosen = json.loads(saved.read_text())
        return chosen["iters"], chosen["probe"]
    probe = seconds_per_iteration(probes, out / "_probe")
    iters = budget_iterations(args.budget_minutes, time.perf_counter() - t_start, runs_per_probe * sum(probe.values()))
    out.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"key": key, "iters": iters, "probe": probe}, indent=1))
    print(f"{args.preset}: probe " + ", ".join(f"{k} {v:.2f} s/it" for k, v in probe.items())
          + f" -> {iters} iterations per run", flush=True)
    return iters, probe


def run_minutes(iters: int, probe: dict[str, float]) -> float:
    """Training minutes of one run in a job planned for ``iters`` iterations per run: the probe's mean seconds
    per iteration times ``LATE_STEP_FACTOR``, so an equal-time job costs what the equal-iteration job would."""
    return iters * sum(probe.values()) / len(probe) * LATE_STEP_FACTOR / 60


def with_time_budget(base: Config, minutes: float, fastest_s_per_iter: float, headroom: float = 2.0) -> Config:
    """``base`` trained for ``minutes`` of training time (``train.max_minutes``; the LR schedule runs on the
    elapsed fraction). ``train.max_iters`` becomes a cap of ``headroom`` times what the fastest probed model
    would reach, so no model stops at it; warm-up and LR steps keep their fractions of the preset's run."""
    cap = max(10, int(headroom * minutes * 60 / fastest_s_per_iter))
    scale = cap / base.train.max_iters
    steps = [max(1, int(s * scale)) for s in base.train.steps]
    warmup = int(base.train.warmup_iters * scale)
    return apply_overrides(base, [f"train.max_minutes={minutes:.4f}", f"train.max_iters={cap}", f"train.steps={steps}",
                                  f"train.warmup_iters={warmup}", f"train.eval_period={cap}",
                                  f"train.checkpoint_period={cap}"])


def reached_iterations(run: Path) -> int:
    """Iterations a finished run trained for (``train_summary.json``)."""
    return int(json.loads((run / "train_summary.json").read_text())["iterations"])


def mean_ga_weight(cfg: Config, folder: Path) -> float:
    """Mean GA weight of the pixels GAInS's mask loss sees, on the training set of ``cfg``: for every ground-truth
    instance the mean of its GA map over its box (the region the M x M crop of a positive RoI samples; each
    positive RoI overlaps such a box at IoU > 0.5), averaged over all instances. The GA maps are computed into
    ``folder``, which is removed afterwards. The reference's mask loss weighs BCE by these maps and by 0.75, the
    baseline's by 1, so a GAInS model trains its masks with 0.75 x this mean of the baseline's weight."""
    from gains.engine.train import build_train_dataset, resolve_data

    cfg = run_config(cfg, "gains", 0, ["data.hflip=0", "data.vflip=0", "data.rot90=0", "data.jitter=false"])
    try:
        train_json, _, images = resolve_data(cfg, folder)
        data = build_train_dataset(cfg, train_json, images, folder, crops=False)
        means = []
        for k in range(len(data)):
            _, target = data[k]
            for (x0, y0, x1, y1), ga in zip(target["boxes"].round().int().tolist(), target["ga_maps"], strict=True):
                means.append(float(ga[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)].mean()))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not means:
        raise SystemExit(f"{cfg.data.train or cfg.data.synthetic}: no training instances to weigh")
    return float(np.mean(means))


def train_or_resume(cfg: Config, run: Path) -> float:
    """Train ``cfg`` into ``run``: resume a run whose settings differ only where ``fit`` may resume across
    (``RESUMABLE_CHANGES``: periods, device, scoring), restart one with other settings; returns the training
    wall time in seconds, or for a run that resumed from a checkpoint (part or all of it trained by an earlier
    job) the sum of its step times over all its iterations."""
    from gains.engine.train import RESUMABLE_CHANGES, fit

    # config.yaml (written by fit) says what last.pt was trained with, without loading the checkpoint twice
    saved = run / "config.yaml"
    if (run / "last.pt").exists() and saved.exists() and not set(
            config_changes(config_to_dict(load_config(saved)), config_to_dict(cfg))) <= RESUMABLE_CHANGES:
        shutil.rmtree(run)
    resumed = (run / "last.pt").exists()
    t0 = time.perf_counter()
    fit(cfg, run, resume=True, progress=False)
    return step_seconds(run) if resumed else time.perf_counter() - t0


def evaluate_run(cfg: Config, run: Path, device: str) -> tuple[dict[str, float], dict[tuple[str, str], dict]]:
    """Held-out metrics of ``run/last.pt`` (synthetic: the generated val scenes; real data: the test split),
    scored with ``cfg.eval`` (score threshold, detections per image), and the per-image metrics keyed by
    (image id, category)."""
    from gains.inference.eval_run import evaluate_checkpoint
    from gains.inference.predictor import PredictOptions

    if cfg.data.synthetic:
        data, split = run / "data" / "val", "all"
    else:
        data, split = Path(cfg.data.test).parent, "test"
    evaluate_checkpoint(run / "last.pt", data, split, run / "eval", PredictOptions(device=device),
                        score_thresh=cfg.eval.score_thresh, max_dets=cfg.eval.max_dets)
    return read_eval(run)


def read_eval(run: Path) -> tuple[dict[str, Any], dict[tuple[str, str], dict]]:
    """The metrics a finished evaluation left in ``run/eval`` and its per-image metrics keyed by
    (image id, category); SystemExit naming the folder when there is none."""
    folder = run / "eval"
    if not (folder / "METRICS.json").exists():
        raise SystemExit(f"{folder}: no finished evaluation (METRICS.json)")
    with open(folder / "METRICS_per_image.csv") as fh:
        # evaluations from before the contact metrics lack their columns: NaN, left out of the pairs
        images = {(r["image_id"], r["category"]): {k: float(r.get(k) or "nan") for k in PAIRED}
                  for r in csv.DictReader(fh)}
    return json.loads((folder / "METRICS.json").read_text()), images


def step_times(run: Path) -> list[float]:
    """The training step times recorded in ``run/metrics.jsonl``, in order."""
    return [r["time"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "time" in r]


def iteration_times(run: Path) -> list[float]:
    """Each iteration's step time plus its wait for the data loader (``data_s``; runs recorded before it
    existed give the step time alone), in order."""
    rows = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "time" in r]
    return [r["time"] + r.get("data_s", 0.0) for r in rows]


def step_seconds(run: Path) -> float:
    """Sum of the training step times recorded in ``run/metrics.jsonl``."""
    return sum(step_times(run))


def mean_std(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {mean, std}} over runs of every SUMMARY metric (NaN where a run lacks it: the contact metrics
    of a category without contacts, or evaluations from before they existed)."""
    table = np.asarray([[np.nan if m.get(k) is None else m[k] for k in SUMMARY] for m in runs], dtype=float)
    return {k: {"mean": float(np.mean(table[:, j])), "std": float(np.std(table[:, j]))} for j, k in enumerate(SUMMARY)}


def spread(stat: dict[str, float]) -> str:
    """``mean ± std`` of a ``mean_std`` entry, four decimals."""
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}"


def per_category(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{category: mean_std of its SUMMARY metrics} over runs (``evaluate_run`` metrics with per_category)."""
    names = sorted({c for m in runs for c in m.get("per_category", {})})
    return {c: mean_std([m["per_category"][c] for m in runs]) for c in names}


def paired(images_a: list[dict], images_b: list[dict]) -> dict[str, dict[str, Any]]:
    """Per-image paired differences a - b of every PAIRED metric, pooled over seeds (runs matched in order)."""
    from gains.evaluation.paired import paired_stats

    out = {}
    for k in PAIRED:
        diffs = [a[key][k] - b[key][k] for a, b in zip(images_a, images_b, strict=True)
                 for key in a if key in b and not (math.isnan(a[key][k]) or math.isnan(b[key][k]))]
        out[k] = paired_stats(np.asarray(diffs)) if diffs else {}
    return out


def paired_rows(stats: dict[str, dict[str, Any] | None]) -> list[str]:
    """Markdown rows: metric | mean | 95% CI | wins/losses | sign p (metrics whose stats are empty or None left out)."""
    return [f"| {k} | {s['mean']:+.4f} | [{s['ci_low']:+.4f}, {s['ci_high']:+.4f}] | {s['wins']}/{s['losses']} | "
            f"{s['sign_p']:.3g} |" for k, s in stats.items() if s]


def settings_paired_rows(diffs: dict[str, dict[str, dict[str, Any]]], reference: str = "preset",
                         metrics: tuple[str, ...] = ("aji_gains", "aji", "contact_iou", "contact_recall50")
                         ) -> list[str]:
    """A markdown table of each setting's per-image paired difference of ``metrics`` (those present) against
    ``reference`` (``diffs``: {setting: ``paired`` output}), preceded by a blank line."""
    lines = ["", f"| setting: per-image paired difference against {reference} | mean | 95% CI | wins/losses | sign p |",
             "|---|---|---|---|---|"]
    for s, d in diffs.items():
        lines += [f"| {s}: " + row[2:] for row in paired_rows({k: d.get(k) for k in metrics})]
    return lines
