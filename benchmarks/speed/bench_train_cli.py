"""Training speed as users meet it: ``gains train`` of each arm (a variant and its settings) for a few dozen
iterations from scratch, arms alternated over rounds, median step time after the first few iterations.

An arm is ``NAME:KEY=VALUE,KEY=VALUE`` (``--set`` overrides of the preset). The default arms are the baseline,
GAInS as the preset has it, and GAInS with its anomaly branch on at most 8 positive RoIs per image instead of
32 ("gains-cap8": cheaper, but less accurate per iteration, docs/BENCHMARKS.md "Training speed").

    .venv/bin/python -m benchmarks.speed.bench_train_cli --preset synthetic-overlap [--iters 40] [--rounds 2]
        [--arm NAME:KEY=VALUE,...]... [--json OUT.json]

``--tree NAME=DIR`` runs arm NAME with another checkout's code (``DIR/src`` first on the path, and its
``DIR/configs/<preset>_cpu.yaml`` where presets were still files there): a before/after of the code itself in one
run, e.g. ``git worktree add /tmp/before <commit>`` and ``--arm old-gains:model.variant=gains --tree
old-gains=/tmp/before``.

Step times are the ``time`` of each iteration in ``metrics.jsonl`` (the forward, backward and optimizer
step; data loading is not in it); iteration times add its ``data_s`` (the wait for the batch), which is what a
time budget pays and what ``data.num_workers`` can hide, e.g. ``--arm maskrcnn-w1:model.variant=maskrcnn,
data.num_workers=1``. Every run has the machine to itself only if nothing else runs: the
arms are alternated so that a slower stretch of the machine is shared between them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.accuracy import harness
from gains.config import load_config
from gains.sysinfo import cpu_facts

DEFAULT_ARMS = ("gains:model.variant=gains", "gains-cap8:model.variant=gains,model.ga_rois_per_image=8",
                "maskrcnn:model.variant=maskrcnn")


def code_of(config: str, tree: Path | None) -> tuple[str, dict[str, str]]:
    """(--config value, environment) for ``gains train`` of preset ``config`` with this checkout's code, or with
    ``tree``'s: its ``src`` first on PYTHONPATH and its ``configs/<config>.yaml`` where presets were files."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if tree is None:
        return config, env
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "src"), *filter(None, [env.get("PYTHONPATH")])])
    file = tree / "configs" / f"{config}.yaml"
    return (str(file) if file.is_file() else config), env


def run_arm(preset: str, data_sets: list[str], sets: list[str], iters: int, run: Path,
            tree: Path | None = None) -> tuple[list[float], list[float], float, str | None]:
    """(step times, iteration times with the data wait, wall seconds of the whole command, the autocast mode
    it used: ``amp_of``) of one ``gains train`` run, with the code of ``tree`` (a checkout) instead of this
    one's when given."""
    config, env = code_of(harness.PRESETS[preset] + "_cpu", tree)
    cmd = [sys.executable, "-m", "gains", "train", "--config", config, "--out", str(run),
           "--quiet", "--set", f"train.max_iters={iters}", "--set", "train.eval_period=0",
           "--set", "train.checkpoint_period=0"]
    for s in [*data_sets, *(["data.val=null"] if data_sets else []), *sets]:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    return harness.step_times(run), harness.iteration_times(run), wall, amp_of(run)


def amp_of(run: Path) -> str | None:
    """The autocast mode a finished run used: ``train_summary.json``'s, or for code from before it recorded
    one, its config's ``train.amp`` (a mode itself before "auto" existed); None where neither tells."""
    summary = run / "train_summary.json"
    amp = json.loads(summary.read_text()).get("amp") if summary.is_file() else None
    if amp is None and (run / "config.yaml").is_file():
        amp = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("train", {}).get("amp")
    return None if amp == "auto" else amp


def git_commit(tree: Path) -> str:
    """The commit checked out in ``tree`` (short hash), or its path when git cannot tell."""
    out = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or str(tree)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(harness.PRESETS), required=True)
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--skip", type=int, default=5, help="first iterations left out of the median")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--arm", action="append", default=[], metavar="NAME:KEY=VALUE,...")
    p.add_argument("--ratio", action="append", default=[], metavar="A/B",
                   help="also report arm A's median step over arm B's (default: gains/maskrcnn, gains-cap8/maskrcnn)")
    p.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                   help="run arm NAME with the code of the checkout DIR (a before/after of the code)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if any("/" not in r for r in args.ratio):
        p.error("--ratio takes A/B, two arm names")
    arms = dict(harness.parse_arm(a) for a in (args.arm or DEFAULT_ARMS))
    trees: dict[str, Path] = {}
    for t in args.tree:
        name, sep, folder = t.partition("=")
        if not sep or name not in arms:
            p.error(f"--tree {t}: takes NAME=DIR with NAME one of the arms ({', '.join(arms)})")
        if not (Path(folder) / "src" / "gains").is_dir():
            p.error(f"--tree {t}: {folder} is not a checkout of gains (no src/gains)")
        trees[name] = Path(folder).resolve()
    batch = load_config(harness.PRESETS[args.preset] + "_cpu").train.batch_size
    data_sets = [] if args.preset.startswith("synthetic") else harness.prepare_real_data(args.preset,
                                                                                          harness.BENCH_DATA)
    times: dict[str, list[float]] = {n: [] for n in arms}
    iterations: dict[str, list[float]] = {n: [] for n in arms}
    walls: dict[str, list[float]] = {n: [] for n in arms}
    amps: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory(prefix="gains_bench_train_") as tmp:
        for r in range(args.rounds):
            for name, sets in arms.items():
                steps, whole, wall, amps[name] = run_arm(args.preset, data_sets, sets, args.iters,
                                                         Path(tmp) / f"{name}-{r}", trees.get(name))
                times[name] += steps[args.skip:]
                iterations[name] += whole[args.skip:]
                walls[name].append(wall)
                print(f"round {r} {name}: median step {statistics.median(steps[args.skip:]):.3f} s, "
                      f"command {wall:.0f} s", file=sys.stderr)
    median = {n: statistics.median(t) for n, t in times.items()}
    with_data = {n: statistics.median(t) for n, t in iterations.items()}
    result = {"preset": args.preset, "iters": args.iters, "skip": args.skip, "rounds": args.rounds,
              "cpu": cpu_facts(),
              "arms": {n: {"sets": arms[n], **({"tree": git_commit(trees[n])} if n in trees else {}),
                           **({"amp": amps[n]} if amps[n] else {}),
                           "median_step_s": round(median[n], 4), "steps": len(times[n]),
                           "images_per_s": round(batch / median[n], 3),
                           "median_iteration_s": round(with_data[n], 4),
                           "images_per_s_with_data": round(batch / with_data[n], 3),
                           "command_s": [round(w, 1) for w in walls[n]]}
                       for n in arms}}
    for n in arms:
        print(f"{n:<18} median step {median[n]:.3f} s, with the data wait {with_data[n]:.3f} s")
    pairs = [tuple(r.split("/", 1)) for r in args.ratio] or [("gains", "maskrcnn"), ("gains-cap8", "maskrcnn")]
    for a, b in pairs:
        if a in median and b in median:
            result[f"{a}/{b}"] = round(median[a] / median[b], 3)
            print(f"{a} / {b}: {median[a] / median[b]:.2f}x")
    if "gains" in median and "gains-cap8" in median:
        result["gains-cap8 speed-up"] = round(median["gains"] / median["gains-cap8"], 3)
        print(f"gains-cap8: {median['gains'] / median['gains-cap8']:.2f}x faster than gains")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
