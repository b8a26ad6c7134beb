"""Training step time against intra-op threads, with and without another busy process (``train.threads``).

Runs ``gains train DIR --weights nuclei`` (subprocess, ``OMP_NUM_THREADS`` unset) on synthetic overlap scenes for a
fixed number of iterations with ``train.threads`` 1, 2 and 0 (auto), each on a machine left as it is ("quiet") and
with one more process spinning on a core (``python -c "while True: pass"``), in ``--rounds`` rounds that alternate
the arms, and reports per arm the median over its steps of every round (``metrics.jsonl``'s ``time``, the first
iterations of each run left out), each round's median, and the 1-minute load averages before its runs.

    .venv/bin/python -m benchmarks.speed.bench_threads [--iters 10] [--size 512] [--images 6] [--rounds 3]
        [--json benchmarks/results/bench_threads.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import RESULTS

SKIP = 3  # first iterations left out: allocator and autotuning warm-up
SETTINGS = {"1": "1", "2": "2", "auto": "0"}


def _run(data: Path, run: Path, threads: str, iters: int, size: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    cmd = [str(Path(sys.executable).with_name("gains")), "train", str(data), "--weights", "nuclei", "--scale", "1",
           "--out", str(run), "--quiet", "--set", f"train.max_iters={iters}", "--set", f"train.threads={threads}",
           "--set", "train.eval_period=0", "--set", "train.checkpoint_period=0", "--set", f"data.crop_size={size}"]
    load = os.getloadavg()[0]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(done.stderr)
    steps = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    times = [s["time"] for s in steps if "split" not in s][SKIP:]
    used = json.loads((run / "train_summary.json").read_text())["threads"]
    return {"times": times, "threads_used": used, "load_before": round(load, 2)}


def main(argv: list[str] | None = None) -> int:
    """Measure every arm and print a markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--json", type=Path, default=RESULTS / "bench_threads.json")
    args = p.parse_args(argv)
    from gains.data.synth import write_synthetic

    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_synthetic("overlap", args.images, args.size, 0, data)
        for r in range(args.rounds):
            for busy in (False, True):
                spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
                try:
                    for name, setting in SETTINGS.items():
                        key = f"{'busy' if busy else 'quiet'}/{name}"
                        one = _run(data, Path(tmp) / f"{key.replace('/', '_')}_{r}", setting, args.iters, args.size)
                        runs.setdefault(key, []).append(one)
                        print(key, r, round(statistics.median(one["times"]), 3), one["load_before"], flush=True)
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()
    rows = {key: {"median_step_s": round(statistics.median([t for one in group for t in one["times"]]), 3),
                  "round_medians": [round(statistics.median(one["times"]), 3) for one in group],
                  "threads_used": sorted({one["threads_used"] for one in group}),
                  "load_before": [one["load_before"] for one in group]} for key, group in runs.items()}
    doc = {"iters": args.iters, "size": args.size, "images": args.images, "rounds": args.rounds,
           "cores": len(os.sched_getaffinity(0)), "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print("| machine | train.threads | threads used | median step s | against 1 thread | round medians s | "
          "load before |")
    print("|---|---|---|---|---|---|---|")
    for key, row in rows.items():
        base = rows[f"{key.split('/')[0]}/1"]["median_step_s"]
        print(f"| {key.split('/')[0]} | {key.split('/')[1]} | {'/'.join(map(str, row['threads_used']))} | "
              f"{row['median_step_s']:.2f} | {row['median_step_s'] / base:.2f}x | "
              f"{', '.join(f'{t:.2f}' for t in row['round_medians'])} | "
              f"{', '.join(f'{t:.1f}' for t in row['load_before'])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
