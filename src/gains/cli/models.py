"""``gains models``: the shipped models and their cards (see ``gains.zoo``)."""

from __future__ import annotations

import argparse
import json

from gains.errors import InputError


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains models`` to the subcommands."""
    p = sub.add_parser("models", help="list the shipped models (usable by name wherever a checkpoint is)",
                       description="Shipped models: `gains predict NAME IMAGES --out DIR`, `gains eval NAME ...`, "
                                   "`--set model.weights=NAME` to fine-tune from one.")
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    p.add_argument("name", nargs="?", help="model name (with show)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one model's card as JSON, or every model's name, size and summary."""
    from gains import zoo

    if args.action == "show":
        if not args.name:
            raise InputError("gains models show NAME: name a model (gains models lists them)")
        print(json.dumps(zoo.card(args.name), indent=1))
        return 0
    if not zoo.names():
        print("no shipped models in this installation")
    for name in zoo.names():
        info = zoo.card(name)
        print(f"{name:10s} {info['bytes'] / 2**20:5.1f} MiB  {info.get('summary', '')}")
    return 0
