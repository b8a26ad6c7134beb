"""``gains presets``: list the shipped training presets, or print one to start a config file from."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains presets`` (and ``gains presets show NAME``) to the subcommands."""
    p = sub.add_parser("presets", help="list the shipped training presets (gains presets show NAME prints one)",
                       description="Training presets shipped with gains; pass a name to --config, or print one "
                                   "with `gains presets show NAME > my.yaml` to start your own file.")
    actions = p.add_subparsers(dest="presets_action")
    show = actions.add_parser("show", help="print a preset's YAML")
    show.add_argument("name", help="preset name (see `gains presets`)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one preset's YAML, or every preset's name and purpose."""
    from gains.presets import preset_names, preset_purpose, preset_text

    if args.presets_action == "show":
        print(preset_text(args.name), end="")
        return 0
    names = preset_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:{width}s}  {preset_purpose(name)}")
    return 0
