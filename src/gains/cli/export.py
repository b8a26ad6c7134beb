"""``gains export``: a canonical dataset's ground truth in one output format (see ``gains.formats``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gains.formats import describe, names


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains export`` to the subcommands; its choices and help come from the format registry."""
    p = sub.add_parser("export", help=f"canonical dataset -> {', '.join(names('export'))}",
                       description=f"Write a canonical dataset's ground truth in one format: {describe('export')}.")
    p.add_argument("folder", type=Path)
    p.add_argument("--to", choices=names("export"), required=True, help=describe("export"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print where to."""
    from gains.formats.export import export_dataset

    out = export_dataset(args.folder, args.to, args.out, overwrite=args.overwrite)
    print(f"exported {args.folder} as {args.to} to {out}")
    return 0
