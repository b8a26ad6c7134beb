"""Patch training: does a step on 2048 x 2048 images cost what a step on 512 x 512 images of the same data costs?

The same synthetic scenes (``gains.data.synth``) are written twice: as 512 x 512 images and as 2048 x 2048 mosaics
of 16 of them. Both are trained through ``gains train`` (a subprocess each, the ``synthetic_<kind>_cpu`` preset)
at the native scale (``model.test_scale=1``) with ``data.crop_size=CROP`` for the same number of iterations, the
two arms alternated over rounds. For contrast, the whole-image rule at the same scale: 512 px images against
mosaics of ``--baseline-side`` px (whole 2048 px images need gigabytes of dense target stacks; 1024 px by default)
trained at their own size (``model.min_size_train=[side]``).

A step is the ``time`` of an iteration in ``metrics.jsonl`` (forward, backward, optimizer step); an iteration adds
its wait for the batch (``data_s``: reading the whole image, and on an image's first visit its masks and GA maps).
Medians leave out the first ``--skip`` iterations of each run (of a baseline run, at most half of them). Every run
uses ``--threads`` intra-op threads (``train.threads``; default 1).

    .venv/bin/python -m benchmarks.speed.bench_patch [--kind overlap] [--crop 256] [--iters 16] [--rounds 2]
        [--baseline-side 1024] [--baseline-iters 5] [--threads 1] [--json benchmarks/results/bench_patch.json]
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

import numpy as np

from benchmarks import RESULTS
from benchmarks.accuracy import harness
from gains.core.masks import MaskCrop, tight_crop
from gains.data.canonical import Sample, write_dataset
from gains.data.synth import CATEGORIES, make_sample, write_synthetic
from gains.sysinfo import cpu_facts

TILE = 512


def write_mosaics(kind: str, tiles: int, side: int, seed: int, out: Path) -> Path:
    """The scenes ``0 .. tiles - 1`` of ``make_sample(kind, i, 512, seed)`` as ``side`` x ``side`` mosaics, row by
    row (``(side / 512)^2`` scenes each), instances moved with their scene; returns the annotations path."""
    per = side // TILE

    def mosaic(m: int) -> Sample:
        image = np.zeros((side, side), dtype=np.uint8)
        masks, cats = [], []
        for t in range(per * per):
            s = make_sample(kind, m * per * per + t, TILE, seed)
            dy, dx = (t // per) * TILE, (t % per) * TILE
            image[dy : dy + TILE, dx : dx + TILE] = s.image
            for mask, cat in zip(s.masks, s.category_ids, strict=True):
                crop = tight_crop(np.asarray(mask, dtype=bool))
                if crop is not None:
                    masks.append(MaskCrop(crop.y0 + dy, crop.x0 + dx, crop.mask))
                    cats.append(cat)
        return Sample(f"mosaic_{m:03d}.png", image, masks, cats)

    return write_dataset(out, (mosaic(m) for m in range(tiles // (per * per))), CATEGORIES[kind])


def train(kind: str, data: Path, sets: list[str], iters: int, run: Path) -> tuple[list[float], list[float], int]:
    """(step times, iteration times, CPU threads used) of one ``gains train`` run on ``data``."""
    cmd = [sys.executable, "-m", "gains", "train", "--config", f"synthetic_{kind}_cpu", "--out", str(run), "--quiet"]
    for s in ["data.synthetic=null", f"data.train={data}", "data.val=null", "model.test_scale=1.0",
              f"train.max_iters={iters}", "train.eval_period=0", "train.checkpoint_period=0", *sets]:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    threads = json.loads((run / "train_summary.json").read_text()).get("threads", 0)
    return harness.step_times(run), harness.iteration_times(run), threads


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=("overlap", "touch", "cross"), default="overlap")
    p.add_argument("--crop", type=int, default=256, help="data.crop_size of both patch arms")
    p.add_argument("--mosaics", type=int, default=2, help="2048 px mosaics (16 scenes each)")
    p.add_argument("--iters", type=int, default=16)
    p.add_argument("--skip", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--baseline-side", type=int, default=1024, help="mosaic side of the whole-image contrast (0: none)")
    p.add_argument("--baseline-iters", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="train.threads of every run (fixed: the automatic count follows the machine's load)")
    p.add_argument("--json", type=Path, default=RESULTS / "bench_patch.json")
    args = p.parse_args(argv)
    if args.baseline_side and (args.baseline_side % TILE or args.baseline_side < TILE):
        p.error("--baseline-side must be a multiple of 512")
    tiles = 16 * args.mosaics
    load = {"before": os.getloadavg()}
    steps: dict[str, list[float]] = {}
    iterations: dict[str, list[float]] = {}
    threads: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="gains_bench_patch_") as tmp:
        root = Path(tmp)
        data = {"512": write_synthetic(args.kind, tiles, TILE, args.seed, root / "tiles"),
                "2048": write_mosaics(args.kind, tiles, 2048, args.seed, root / "mosaics")}
        common = [f"train.threads={args.threads}"]
        arms = {f"crop-{n}": (data[n], [f"data.crop_size={args.crop}"], args.iters) for n in data}
        if args.baseline_side:
            side = args.baseline_side
            data[str(side)] = data.get(str(side)) or write_mosaics(args.kind, tiles, side, args.seed,
                                                                   root / f"mosaics{side}")
            for n in ("512", str(side)):
                arms[f"whole-{n}"] = (data[n], [f"model.min_size_train=[{n}]", f"model.max_size={n}"],
                                      args.baseline_iters)
        for r in range(args.rounds):
            for name, (folder, sets, iters) in arms.items():
                step, whole, used = train(args.kind, folder, [*common, *sets], iters, root / f"{name}-{r}")
                threads.add(used)
                skip = min(args.skip, iters // 2)
                steps.setdefault(name, []).extend(step[skip:])
                iterations.setdefault(name, []).extend(whole[skip:])
                print(f"round {r} {name}: median step {statistics.median(step[skip:]):.3f} s", file=sys.stderr)
    load["after"] = os.getloadavg()
    median = {n: statistics.median(t) for n, t in steps.items()}
    with_data = {n: statistics.median(t) for n, t in iterations.items()}
    result = {"kind": args.kind, "crop_size": args.crop, "iters": args.iters, "skip": args.skip,
              "rounds": args.rounds, "images": {"512": tiles, "2048": args.mosaics}, "cpu": cpu_facts(),
              "threads": sorted(threads),
              "load_average": {k: [round(v, 2) for v in vals] for k, vals in load.items()},
              "arms": {n: {"median_step_s": round(median[n], 4), "median_iteration_s": round(with_data[n], 4),
                           "steps": len(steps[n])} for n in steps},
              "ratio_crop_2048_512": round(median["crop-2048"] / median["crop-512"], 3),
              "ratio_crop_2048_512_with_data": round(with_data["crop-2048"] / with_data["crop-512"], 3)}
    if args.baseline_side:
        b = f"whole-{args.baseline_side}"
        result["baseline_side"] = args.baseline_side
        result[f"ratio_whole_{args.baseline_side}_512"] = round(median[b] / median["whole-512"], 3)
    for n in steps:
        print(f"{n:<12} median step {median[n]:.3f} s, with the data wait {with_data[n]:.3f} s")
    for key, value in result.items():
        if key.startswith("ratio"):
            print(f"{key}: {value:.2f}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
