"""``gains report``: the HTML report of a training run (see ``gains.report``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gains.cli.args import device, non_negative_int


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains report`` to the subcommands."""
    p = sub.add_parser("report", help="write the HTML report of a training run")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, help="default: RUN_DIR/report.html")
    p.add_argument("--images", type=non_negative_int, default=4, help="validation images shown")
    p.add_argument("--device", type=device, default="cpu")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report and print its path."""
    from gains.report import build_report

    path = build_report(args.run_dir, args.out, n_images=args.images, device=args.device)
    print(f"wrote {path}")
    return 0
