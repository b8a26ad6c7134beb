"""``gains train``: train GAInS or the Mask R-CNN baseline (see ``gains.engine.train``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gains.errors import InputError


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains train`` to the subcommands."""
    p = sub.add_parser("train", help="train GAInS or the Mask R-CNN baseline",
                       description="Train on a canonical dataset or on synthetic scenes (one process or torchrun).")
    p.add_argument("--config", help="preset name (`gains presets` lists them) or YAML file; defaults when omitted")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.max_iters=200 (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--overwrite", action="store_true", help="start again in a run folder of an earlier run (its "
                   "checkpoints and metrics are replaced)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train; a non-finite loss or a bad config value is an ``InputError``."""
    from gains.config import load_config
    from gains.engine.train import NonFiniteLossError, fit

    cfg = load_config(args.config, args.overrides)
    try:
        summary = fit(cfg, args.out, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    except NonFiniteLossError as exc:
        raise InputError(str(exc)) from exc
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    best = summary.get("best_segm_AP")
    print(f"trained {summary['iterations']} iterations into {args.out}"
          + (f"; best val segm/AP {best:.4f}" if best is not None and best >= 0 else ""))
    return 0
