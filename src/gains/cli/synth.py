"""``gains synth``: a canonical dataset of synthetic scenes (see ``gains.data.synth``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gains.cli.args import non_negative_int
from gains.errors import InputError

KINDS = ("overlap", "touch", "cross", "thin")  # gains.data.synth.KINDS, written out so the parser imports no scipy


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains synth`` to the subcommands."""
    p = sub.add_parser("synth", help="generate synthetic overlapping/touching/crossing/thin scenes",
                       description="Write a canonical dataset of synthetic CTO scenes.")
    p.add_argument("kind", choices=KINDS, help="thin: long, curved, crossing worm-like objects")
    p.add_argument("--n", type=int, default=100, help="number of images (>= 1)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (>= 32)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the scenes; a bad count or size is an ``InputError``."""
    from gains.data.synth import write_synthetic

    try:
        path = write_synthetic(args.kind, args.n, args.size, args.seed, args.out, overwrite=args.overwrite)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    print(f"wrote {args.n} {args.kind} scenes to {path.parent}")
    return 0
