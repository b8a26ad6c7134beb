"""``gains split``: seeded train/val/test json next to annotations.json (see ``gains.data.split``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gains.cli.args import non_negative_int
from gains.errors import InputError


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains split`` to the subcommands."""
    p = sub.add_parser("split", help="write seeded train/val/test json next to annotations.json")
    p.add_argument("folder", type=Path, help="canonical dataset folder")
    p.add_argument("--ratios", default="6:2:2", help="train:val:test (default 6:2:2)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--preset", choices=("isbi2014-30-15",), help="a fixed named split instead of ratios")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Split and print each part's image count; malformed ``--ratios`` is an ``InputError``."""
    import json

    from gains.data.split import split_dataset

    try:
        ratios = tuple(float(r) for r in args.ratios.split(":"))
    except ValueError as exc:
        raise InputError(f"--ratios must look like 6:2:2, got {args.ratios!r}") from exc
    paths = split_dataset(args.folder, ratios, args.seed, args.preset)
    for name, path in paths.items():
        print(f"{name:5s} {len(json.loads(path.read_text())['images']):5d} images -> {path}")
    return 0
