"""``gains stats``: images, instances, per-image counts, overlap/touch pairs (see ``gains.data.stats``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains stats`` to the subcommands."""
    p = sub.add_parser("stats", help="images, instances, per-image counts, overlap/touch pairs")
    p.add_argument("folder", type=Path, help="canonical dataset folder (or an annotations JSON)")
    p.add_argument("--json", type=Path, help="also write the numbers as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the numbers, and write them as JSON if asked."""
    import json

    from gains.data.stats import dataset_stats, format_stats

    ann = args.folder / "annotations.json" if args.folder.is_dir() else args.folder
    stats = dataset_stats(ann)
    print(format_stats(stats))
    if args.json:
        from gains.atomic import atomic_write

        payload = json.dumps(stats, indent=1).encode()
        atomic_write(args.json, lambda fh: fh.write(payload))  # a failed write leaves no empty or half file
    return 0
