"""``gains train``: train GAInS or the Mask R-CNN baseline from a config (``gains.engine.train``), or on a folder of
your own images with a recipe chosen from the data (``gains train DIR``, ``gains.engine.recipe``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gains.cli.args import positive_float
from gains.errors import InputError

FOLDER_FLAGS = ("weights", "minutes", "scale", "object_size")  # only with DIR


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains train`` to the subcommands."""
    p = sub.add_parser("train", help="train GAInS or the Mask R-CNN baseline",
                       description="Train on a canonical dataset or on synthetic scenes (one process or torchrun). "
                       "With DIR: fine-tune on your folder with no config file (the recipe, GAMM variant, scale and "
                       "validation split are chosen from the data and printed).")
    p.add_argument("dir", nargs="?", type=Path, metavar="DIR",
                   help="your dataset folder: annotations.json + images/ (split files optional), images/ + labels/ "
                   "(label images), or one folder per image with images/ and masks/; instead of --config")
    p.add_argument("--weights", help="with DIR: the model to start from: nuclei, overlap (shipped), a checkpoint or "
                   "run folder, or none (from scratch); default nuclei")
    p.add_argument("--minutes", type=positive_float, help="with DIR: training time budget (train.max_minutes)")
    p.add_argument("--scale", type=positive_float, help="with DIR: train and predict at this scale instead of the "
                   "one that brings your objects to the starting model's object size")
    p.add_argument("--object-size", type=positive_float, metavar="PX", help="with DIR: your objects' diameter in "
                   "pixels, instead of the median measured on the annotations")
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

    given = [f"--{name.replace('_', '-')}" for name in FOLDER_FLAGS if getattr(args, name) is not None]
    if args.dir is None and given:
        raise InputError(f"{given[0]} goes with DIR (gains train DIR {given[0]} ... --out RUN)")
    if args.dir is not None and args.config is not None:
        raise InputError("give DIR or --config, not both (with DIR, --set changes the recipe's settings)")
    try:
        if args.dir is not None:
            from gains.engine.recipe import train_folder

            summary = train_folder(args.dir, args.out, args.weights or "nuclei", args.minutes, args.scale,
                                   args.object_size, args.overrides, resume=args.resume, overwrite=args.overwrite,
                                   progress=not args.quiet)
        else:
            summary = fit(load_config(args.config, args.overrides), args.out, resume=args.resume,
                          progress=not args.quiet, overwrite=args.overwrite)
    except NonFiniteLossError as exc:
        raise InputError(str(exc)) from exc
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    best = summary.get("best_segm_AP")
    print(f"trained {summary['iterations']} iterations into {args.out}"
          + (f"; best val segm/AP {best:.4f}" if best is not None and best >= 0 else ""))
    return 0
