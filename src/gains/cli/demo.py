"""``gains demo``: the main job end to end on generated data (see ``gains.demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gains.cli.args import positive_float, positive_int


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains demo`` to the subcommands."""
    p = sub.add_parser("demo", help="run the main job end to end on generated data",
                       description="Synthesise scenes, compute GA maps, train GAInS on the CPU, evaluate, predict "
                                   "and write an HTML report.")
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument("--minutes", type=positive_float, default=3.5, help="training budget in wall-clock minutes (the "
                   "whole demo takes about a minute more)")
    p.add_argument("--size", type=positive_int, default=256, help="scene side in pixels")
    p.add_argument("--weights", help="the start: a shipped model (default: nuclei) or a checkpoint, or none "
                   "(from scratch)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where its report is."""
    from gains.demo import DEMO_START, run_demo

    report = run_demo(args.out, minutes=args.minutes, size=args.size, progress=not args.quiet,
                      weights=args.weights or DEMO_START)
    print(f"demo finished: open {report.resolve()}")
    return 0
