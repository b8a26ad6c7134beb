"""``gains predict``: segment image files or folders (see ``gains.inference.predict_run``).

Also the option groups ``gains eval`` shares (tiles, scale) and the plane options that say which planes and
channels of a microscopy file are read (``gains.core.images``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from gains.cli.args import checked, device, non_negative_int, positive_float, probability
from gains.core.planes import DEFAULT_MAX_BYTES, MIN_SIDE, PlaneChoice, parse_channels, parse_plane
from gains.errors import InputError
from gains.formats import describe

if TYPE_CHECKING:
    from gains.inference.predictor import PredictOptions


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains predict`` to the subcommands."""
    p = sub.add_parser("predict", help="segment images (tiled when large) and write results",
                       description="Segment image files or folders with a trained model (one process or "
                                   "torchrun: each process predicts a share of the images).")
    p.add_argument("checkpoint", type=Path, help="run folder, checkpoint file or shipped model name (gains models)")
    p.add_argument("inputs", nargs="+", type=Path, help="image files (PNG, JPEG, TIFF, OME-TIFF) or folders")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--format", default="coco,csv,overlay",
                   help=f"comma list of {describe('predict')} (default %(default)s)")
    add_tile_options(p)
    add_scale_options(p)
    add_suppression_options(p)
    p.add_argument("--score-thresh", type=probability, help="default: the checkpoint's eval.score_thresh")
    p.add_argument("--device", type=device, default="auto")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--resume", action="store_true", help="skip the images an earlier run into --out finished with "
                   "the same model, options and input files (a killed run goes on where it stopped)")
    p.add_argument("--dask", nargs="?", const="local", metavar="ADDRESS",
                   help="run images and tiles as Dask tasks: on a local cluster sized for this machine (no "
                   "ADDRESS), or on the scheduler at ADDRESS (e.g. tcp://host:8786); needs gains-seg[dask]")
    p.add_argument("--dask-workers", type=checked(int, lambda v: v >= 1, "an integer >= 1"), metavar="N",
                   help="worker processes of the local Dask cluster (default: one per core, memory permitting)")
    add_plane_options(p)
    p.set_defaults(func=run)


def add_tile_options(p: argparse.ArgumentParser) -> None:
    """``--tile``, ``--overlap`` and ``--tile-merge`` on a subcommand's parser."""
    p.add_argument("--tile", type=checked(int, lambda v: v == 0 or v >= MIN_SIDE, f"0 or an integer >= {MIN_SIDE}"),
                   default=1024, help="tile side for large images (0: never tile)")
    p.add_argument("--overlap", type=non_negative_int, default=128, help="tile overlap in pixels")
    p.add_argument("--tile-merge", choices=("central", "union"), default="central",
                   help="how tiles' detections become one set: each object from the tile whose core holds its "
                   "centre (default; needs an overlap of an object's diameter), or the union of masks that agree "
                   "across a seam (objects larger than the overlap)")


def add_scale_options(p: argparse.ArgumentParser) -> None:
    """``--scale`` and ``--object-size`` on a subcommand's parser."""
    p.add_argument("--scale", type=positive_float, help="pixel scale applied to every image before the model "
                   "(default: the model's own rule, printed)")
    p.add_argument("--object-size", type=positive_float, metavar="PX", help="typical object diameter in your "
                   "images, in pixels: images are scaled so objects get the size the model was trained at")


def add_suppression_options(p: argparse.ArgumentParser) -> None:
    """``--nms`` and ``--drop-contained`` on a subcommand's parser (``gains.inference.suppress``)."""
    p.add_argument("--nms", choices=("box", "mask"), default="box",
                   help="duplicate suppression: the model's box NMS (default), or mask NMS: boxes kept unless nearly "
                   "identical, then masks overlapping by more than the model's box_nms_thresh (IoU) dropped, so "
                   "two crossing objects with one box are both kept")
    p.add_argument("--drop-contained", type=checked(float, lambda v: 0 < v <= 1, "a number in (0, 1]"), metavar="F",
                   help="drop an object with at least this share of its pixels inside a higher-scored one of its "
                   "category (nested duplicates; e.g. 0.8; default: off)")


def add_plane_options(p: argparse.ArgumentParser) -> None:
    """``--channels``, ``--z``, ``--t``, ``--axes`` and ``--max-input-gib`` on a subcommand's parser."""
    p.add_argument("--channels", help="channel indices the model sees, 1-3 of them: 2 -> grey, 0,2 -> (c0, c2, c0), "
                   "0,1,2 -> RGB order (default: all of 1-3 channels, alpha dropped)")
    p.add_argument("--z", default="all", help="z plane index, or all (default): every plane, named <stem>_z3...")
    p.add_argument("--t", default="all", help="time point index, or all (default): every one, named <stem>_t0...")
    p.add_argument("--axes", help="axis letters for files without usable metadata, one per axis, e.g. ZYX or CYX")
    p.add_argument("--max-input-gib", type=positive_float, default=DEFAULT_MAX_BYTES / (1 << 30),
                   help="refuse files whose header promises more decoded pixels than this (default %(default)g)")


def plane_choice(args: argparse.Namespace) -> PlaneChoice:
    """The ``PlaneChoice`` of parsed ``add_plane_options`` arguments.

    Raises:
        InputError: a malformed option value.
    """
    return PlaneChoice(channels=None if args.channels is None else parse_channels(args.channels),
                       z=parse_plane(args.z, "--z"), t=parse_plane(args.t, "--t"), axes=args.axes,
                       max_bytes=int(args.max_input_gib * (1 << 30)))


def predict_options(args: argparse.Namespace, score_thresh: float | None = None) -> PredictOptions:
    """The ``PredictOptions`` of ``gains predict`` / ``gains eval`` arguments.

    Raises:
        InputError: an overlap not smaller than the tile.
    """
    from gains.inference.predictor import PredictOptions

    if args.tile and args.overlap >= args.tile:
        raise InputError(f"--overlap {args.overlap} must be smaller than --tile {args.tile}")
    return PredictOptions(tile=args.tile or None, overlap=args.overlap, merge=args.tile_merge, scale=args.scale,
                          object_size=args.object_size, score_thresh=score_thresh, device=args.device,
                          overrides=tuple(args.overrides), nms=args.nms, contained=args.drop_contained)


def run(args: argparse.Namespace) -> int:
    """Predict every image and write the formats asked for; under torchrun rank 0 reports for all."""
    options = predict_options(args, args.score_thresh)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    common = {"progress": not args.quiet, "choice": plane_choice(args), "resume": args.resume}
    if args.dask is not None:
        from gains.distributed.run import predict_files_dask

        summary = predict_files_dask(args.checkpoint, args.inputs, args.out, formats, options, **common,
                                     scheduler=args.dask, workers=args.dask_workers)
    elif args.dask_workers is not None:
        raise InputError("--dask-workers sizes the local cluster of --dask; add --dask")
    else:
        from gains.inference.predict_run import predict_files

        summary = predict_files(args.checkpoint, args.inputs, args.out, formats, options, **common)
    if summary["main"]:  # under torchrun, rank 0 reports for all
        print(summary["scale_note"])
        resumed = f", {summary['resumed']} of them done by an earlier run" if summary["resumed"] else ""
        print(f"{summary['instances']} instances in {summary['images']} images{resumed} -> {summary['out']} "
              f"(peak memory {summary['peak_mib']:.0f} MiB)")
    return 0
