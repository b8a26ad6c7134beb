"""Two finished ablation jobs compared model by model: the same variant and seed trained two ways (other
settings, or from scratch against from a pretrained start) and scored on the same held-out images.

For each variant: mean ± std over seeds of the summary metrics (and per category) in job A and job B, and
the per-image paired difference B - A of every per-image metric (runs of the same seed paired; bootstrap 95%
CI, sign test), as ``benchmarks/accuracy/ablation.py`` reports gains against maskrcnn.

    .venv/bin/python -m benchmarks.accuracy.compare_jobs A_DIR B_DIR --names before after [--seeds 0 1]
        [--out benchmarks/results/compare/NAME]

A_DIR and B_DIR are ablation job folders (``benchmarks/results/ablation/<job>``) holding ``<variant>_s<seed>``
runs with an ``eval/`` folder each. Writes ``compare.{json,md}`` into ``--out`` when given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.accuracy.harness import (
    SUMMARY,
    mean_std,
    paired,
    paired_rows,
    per_category,
    read_eval,
    spread,
    step_seconds,
)

VARIANTS = ("gains", "maskrcnn")


def compare(a: Path, b: Path, names: tuple[str, str], seeds: list[int]) -> tuple[dict, list[str]]:
    """(result, markdown lines) of job ``b`` against job ``a``, per variant present in both."""
    result: dict = {"jobs": {names[0]: str(a), names[1]: str(b)}, "seeds": seeds, "variants": {}}
    lines: list[str] = []
    for v in VARIANTS:
        runs = {n: [d / f"{v}_s{s}" for s in seeds] for n, d in zip(names, (a, b), strict=True)}
        if not all((r / "eval" / "METRICS.json").exists() for rs in runs.values() for r in rs):
            continue
        evals = {n: [read_eval(r) for r in rs] for n, rs in runs.items()}
        table = {n: mean_std([m for m, _ in e]) for n, e in evals.items()}
        cats = {n: per_category([m for m, _ in e]) for n, e in evals.items()}
        diffs = paired([i for _, i in evals[names[1]]], [i for _, i in evals[names[0]]])
        train_s = {n: [step_seconds(r) for r in rs] for n, rs in runs.items()}
        result["variants"][v] = {"summary": table, "per_category": cats, "paired_per_image": diffs,
                                 "step_seconds": train_s}
        mean_s = {n: sum(t) / len(t) for n, t in train_s.items()}
        lines += [f"**{v}** (seeds {seeds}; summed step time per run: {names[0]} {mean_s[names[0]]:.0f} s, "
                  f"{names[1]} {mean_s[names[1]]:.0f} s)", "",
                  f"| metric | {names[0]} | {names[1]} |", "|---|---|---|"]
        lines += [f"| {k} | {spread(table[names[0]][k])} | {spread(table[names[1]][k])} |" for k in SUMMARY]
        shared = [c for c in cats[names[0]] if c in cats[names[1]]]
        if len(shared) > 1:
            lines += [f"| {c} {k} | {spread(cats[names[0]][c][k])} | {spread(cats[names[1]][c][k])} |"
                      for c in shared for k in ("segm/AP", "aji_gains")]
        lines += ["", f"| per-image paired difference ({names[1]} - {names[0]}) | mean | 95% CI | wins/losses | "
                  "sign p |", "|---|---|---|---|---|", *paired_rows(diffs), ""]
    if not result["variants"]:
        raise SystemExit(f"{a} and {b}: no variant has finished, evaluated runs for seeds {seeds} in both")
    return result, lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--names", nargs=2, default=["A", "B"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    result, lines = compare(args.a, args.b, tuple(args.names), args.seeds)
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "compare.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "compare.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
