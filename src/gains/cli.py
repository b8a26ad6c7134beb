"""The ``gains`` command: one subcommand = parse, then call one library function.

Every expected failure prints one line ``gains CMD: error: MESSAGE`` and exits 2: user mistakes (``InputError``),
numbers out of range (refused where parsed, ``gains.cli_args``), file system refusals and exhausted resources
(``expected_failure``). Heavy imports happen inside subcommands.
"""

from __future__ import annotations

import argparse
import errno
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gains import __version__
from gains.cli_args import (
    OneLineParser,
    checked,
    device,
    int_at_least,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)
from gains.cli_data import add_convert, add_dataset_tools, add_synth
from gains.cli_export import add_export
from gains.cli_inputs import add_plane_options, plane_choice
from gains.cli_presets import add_presets
from gains.cli_zoo import add_models
from gains.core.images import MIN_SIDE
from gains.errors import InputError
from gains.formats import describe

if TYPE_CHECKING:
    from gains.inference.predictor import PredictOptions

log = logging.getLogger("gains")


def _add_gamm(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gamm", help="compute GA maps of a COCO dataset",
                       description="Gradient Anomaly Mapping: per-annotation GA maps of a COCO instances file.")
    p.add_argument("annotations", type=Path, help="COCO instances JSON")
    p.add_argument("--images", type=Path, required=True, help="folder the JSON's file_name entries are in")
    p.add_argument("--variant", choices=("isbi", "chrom", "nuclei"), required=True,
                   help="which published GAMM script to reproduce")
    p.add_argument("--window-size", type=int_at_least(2), help="sliding window side (default per variant: 5/5/8)")
    p.add_argument("--ga-factor", type=positive_float, help="maps lie in [1, 1 + F] (default 0.5/0.5/0.8)")
    p.add_argument("--overlap-hl", type=non_negative_float, help="overlap highlight (default 0.1/0.3/0.1)")
    p.add_argument("--target-category", type=int, help="category id that gets maps (default: smallest id)")
    p.add_argument("--raw", action="store_true", help="reference values bit for bit, NaN and all-zero maps kept")
    p.add_argument("--anchor", choices=("topleft", "center"), default="topleft",
                   help="window anchoring: the reference's top-left (default) or centred")
    p.add_argument("--every-category", action="store_true",
                   help="maps for every category, each computed as the target in turn (ignores --target-category)")
    p.add_argument("--zero-maps", choices=("ones", "keep"), default="ones",
                   help="the nuclei variant's all-zero maps: replaced by ones (default) or kept as the reference "
                   "trains")
    p.add_argument("--out", type=Path, help="store folder (default: ./gamm_<variant>_ws.._f.._ol..)")
    p.add_argument("--export-npy", type=Path, metavar="DIR", help="also write DIR/<annotation_id>.npy (float64)")
    p.add_argument("--precision", choices=("float16", "float32"), default="float16", help="stored precision")
    p.add_argument("--workers", type=positive_int, default=1, help="processes working on images in parallel")
    p.add_argument("--preview", type=non_negative_int, default=0, metavar="K", help="write PNG previews of K images")
    p.add_argument("--skip-invalid", action="store_true", help="skip bad annotations/images, count them")
    p.add_argument("--overwrite", action="store_true", help="replace a store made with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_gamm)


def _cmd_gamm(args: argparse.Namespace) -> int:
    from gains.gamm import GammParams, GammStore, run_gamm

    params = GammParams.for_variant(args.variant, window_size=args.window_size, ga_factor=args.ga_factor,
                                    overlap_hl=args.overlap_hl, target_category=args.target_category,
                                    anchor=args.anchor, every_category=args.every_category,
                                    zero_maps=args.zero_maps)
    out = args.out
    if out is None and args.export_npy is None:
        out = Path(f"gamm_{params.tag}")
    run = run_gamm(args.annotations, args.images, params, out=out, export_npy=args.export_npy, raw=args.raw,
                   precision=args.precision, workers=args.workers, skip_invalid=args.skip_invalid,
                   overwrite=args.overwrite, progress=not args.quiet)
    for problem in run.skipped:
        log.warning("skipped: %s", problem)
    if run.up_to_date:
        print(f"{out}: up to date ({run.n_maps} maps)")
    else:
        print(f"{run.n_maps} GA maps of {run.n_images} images in {run.seconds:.1f} s"
              f" ({run.n_computed_images} images computed)" + (f" -> {out}" if out else ""))
    if run.n_nan or run.n_zero:
        print(f"sanitised: {run.n_nan} NaN maps and {run.n_zero} all-zero maps replaced by ones")
    if run.skipped:
        print(f"skipped {len(run.skipped)} invalid items (--skip-invalid)")
    if args.export_npy is not None:
        print(f"exported .npy maps to {args.export_npy}")
    if args.preview:
        from gains.visualize import gamm_previews

        if out is not None:
            load = GammStore(out).load
        else:
            import numpy as np

            def load(ann_id: int):
                return np.load(Path(args.export_npy) / f"{ann_id}.npy")

        base = out if out is not None else args.export_npy
        paths = gamm_previews(args.annotations, args.images, load, run.params.ga_factor, args.preview,
                              Path(base) / "preview")
        print(f"wrote {len(paths)} previews to {Path(base) / 'preview'}")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
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


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score a COCO results file against a ground truth (no model)",
                       description="segm/bbox AP, AJI (GAInS and Kumar), AJI+, PQ, F1@0.5, the DSB score and the "
                                   "contact-region metrics.")
    p.add_argument("gt", type=Path, help="ground-truth COCO JSON")
    p.add_argument("results", type=Path, help="COCO results JSON (RLE or polygon segmentations with scores)")
    p.add_argument("--score-thresh", type=probability, default=0.5, help="predictions kept for aji/aji_plus/pq/f1/dsb")
    p.add_argument("--max-dets", type=positive_int, default=100, help="detections per image for AP and aji_gains")
    p.add_argument("--contact-radius", type=non_negative_int, default=2, help="contact zone: contact pixels "
                   "dilated by this many pixels (contact_iou, contact_recall50)")
    p.add_argument("--out", type=Path, required=True, help="METRICS.json (a per-image CSV is written beside it)")
    p.set_defaults(func=_cmd_score)


def _print_metrics(metrics: dict) -> None:
    from gains.evaluation.score import AP_KEYS, PER_IMAGE

    for key in (*AP_KEYS, *PER_IMAGE):
        value = metrics[key]
        print(f"{key:16s} {value:.4f}" if value is not None else f"{key:16s} n/a (no contact instance)")


def _cmd_score(args: argparse.Namespace) -> int:
    from gains.evaluation.score import score, write_metrics

    metrics, rows = score(args.gt, args.results, args.score_thresh, args.max_dets, args.contact_radius)
    out, csv_path = write_metrics(args.out, metrics, rows)
    _print_metrics(metrics)
    print(f"wrote {out} and {csv_path}")
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="run a trained model over a dataset split and score it",
                       description="Predict a split with a checkpoint; write results.json, METRICS.json and a CSV.")
    p.add_argument("checkpoint", type=Path, help="run folder (best.pt, else last.pt), checkpoint file or shipped "
                   "model name (gains models)")
    p.add_argument("--data", type=Path, required=True, help="canonical dataset folder (or a COCO json)")
    p.add_argument("--split", default="test", help="train, val, test or all (default test)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", type=device, default="auto")
    p.add_argument("--batch-size", type=positive_int, default=1,
                   help="kept for older scripts: images are predicted one at a time, as gains predict does")
    p.add_argument("--score-thresh", type=probability, help="predictions kept for aji/aji_plus/pq/f1/dsb (AP uses "
                   "all; default: the checkpoint's eval.score_thresh)")
    p.add_argument("--max-dets", type=positive_int, help="default: the checkpoint's eval.max_dets")
    _add_tile_options(p)
    _add_scale_options(p)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override inference settings, e.g. model.detections_per_img=300")
    p.set_defaults(func=_cmd_eval)


def _add_scale_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=positive_float, help="pixel scale applied to every image before the model "
                   "(default: the model's own rule, printed)")
    p.add_argument("--object-size", type=positive_float, metavar="PX", help="typical object diameter in your "
                   "images, in pixels: images are scaled so objects get the size the model was trained at")


def _add_tile_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tile", type=checked(int, lambda v: v == 0 or v >= MIN_SIDE, f"0 or an integer >= {MIN_SIDE}"),
                   default=1024, help="tile side for large images (0: never tile)")
    p.add_argument("--overlap", type=non_negative_int, default=128, help="tile overlap in pixels")
    p.add_argument("--tile-merge", choices=("central", "union"), default="central",
                   help="how tiles' detections become one set: each object from the tile whose core holds its "
                   "centre (default; needs an overlap of an object's diameter), or the union of masks that agree "
                   "across a seam (objects larger than the overlap)")


def _predict_options(args: argparse.Namespace, score_thresh: float | None = None) -> PredictOptions:
    """The ``PredictOptions`` of ``gains predict`` / ``gains eval`` arguments.

    Raises:
        InputError: an overlap not smaller than the tile.
    """
    from gains.inference.predictor import PredictOptions

    if args.tile and args.overlap >= args.tile:
        raise InputError(f"--overlap {args.overlap} must be smaller than --tile {args.tile}")
    return PredictOptions(tile=args.tile or None, overlap=args.overlap, merge=args.tile_merge, scale=args.scale,
                          object_size=args.object_size, score_thresh=score_thresh, device=args.device,
                          overrides=tuple(args.overrides))


def _cmd_eval(args: argparse.Namespace) -> int:
    from gains.inference.eval_run import evaluate_checkpoint

    metrics = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.out, _predict_options(args),
                                  args.score_thresh, args.max_dets)
    print(metrics["scale_note"])
    _print_metrics(metrics)
    print(f"wrote {args.out / 'results.json'}, {args.out / 'METRICS.json'}")
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="segment images (tiled when large) and write results",
                       description="Segment image files or folders with a trained model (one process or "
                                   "torchrun: each process predicts a share of the images).")
    p.add_argument("checkpoint", type=Path, help="run folder, checkpoint file or shipped model name (gains models)")
    p.add_argument("inputs", nargs="+", type=Path, help="image files (PNG, JPEG, TIFF, OME-TIFF) or folders")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--format", default="coco,overlay", help=f"comma list of {describe('predict')}")
    _add_tile_options(p)
    _add_scale_options(p)
    p.add_argument("--score-thresh", type=probability, help="default: the checkpoint's eval.score_thresh")
    p.add_argument("--device", type=device, default="auto")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quiet", action="store_true")
    add_plane_options(p)
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from gains.inference.predict_run import predict_files

    options = _predict_options(args, args.score_thresh)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    summary = predict_files(args.checkpoint, args.inputs, args.out, formats, options, progress=not args.quiet,
                            choice=plane_choice(args))
    if summary["main"]:  # under torchrun, rank 0 reports for all
        print(summary["scale_note"])
        print(f"{summary['instances']} instances in {summary['images']} images -> {summary['out']} "
              f"(peak memory {summary['peak_mib']:.0f} MiB)")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job end to end on generated data",
                       description="Synthesise scenes, compute GA maps, train GAInS on the CPU, evaluate, predict "
                                   "and write an HTML report.")
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument("--minutes", type=positive_float, default=3.5, help="training budget in wall-clock minutes (the "
                   "whole demo takes about a minute more)")
    p.add_argument("--size", type=positive_int, default=256, help="scene side in pixels")
    p.add_argument("--weights", help="the start: a shipped model (default: nuclei) or a checkpoint, or none "
                   "(from scratch)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gains.demo import DEMO_START, run_demo

    report = run_demo(args.out, minutes=args.minutes, size=args.size, progress=not args.quiet,
                      weights=args.weights or DEMO_START)
    print(f"demo finished: open {report.resolve()}")
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the HTML report of a training run")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, help="default: RUN_DIR/report.html")
    p.add_argument("--images", type=non_negative_int, default=4, help="validation images shown")
    p.add_argument("--device", type=device, default="cpu")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from gains.report import build_report

    path = build_report(args.run_dir, args.out, n_images=args.images, device=args.device)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = OneLineParser(prog="gains", description="GAInS instance segmentation of touching, crossing "
                                     "and overlapping cells, nuclei and chromosomes.")
    parser.add_argument("--version", action="version", version=f"gains {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_gamm(sub)
    add_synth(sub)
    add_convert(sub)
    add_dataset_tools(sub)
    _add_train(sub)
    _add_score(sub)
    _add_eval(sub)
    _add_predict(sub)
    _add_demo(sub)
    _add_report(sub)
    add_presets(sub)
    add_models(sub)
    add_export(sub)
    return parser


def _os_error_line(exc: OSError) -> str:
    """``FILE: why`` of a failed file operation (``SRC -> DST`` for a rename), with a hint for a full disk."""
    names = " -> ".join(str(n) for n in (exc.filename, exc.filename2) if n is not None)
    why = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        why += "; free some space or write elsewhere"
    elif exc.errno == errno.ENOTDIR:
        why += " (a part of the path is a file)"
    elif exc.errno == errno.EEXIST and exc.filename is not None and not Path(exc.filename).is_dir():
        why = "a file is in the way where a folder is needed"
    return f"{names}: {why}" if names else why


def expected_failure(exc: Exception) -> str | None:
    """The one-line message of an expected failure: bad input, a file system refusal (read-only, full, a file
    where a folder should be), a resource running out; None for anything else (a bug, which keeps its
    traceback)."""
    torch, yaml = sys.modules.get("torch"), sys.modules.get("yaml")  # only what a command has imported
    if isinstance(exc, InputError):
        message = str(exc)
    elif isinstance(exc, OSError):
        message = _os_error_line(exc)
    elif isinstance(exc, MemoryError) or (torch is not None and isinstance(exc, torch.OutOfMemoryError)):
        detail = f" ({exc})" if str(exc) else ""
        message = f"out of memory{detail}; use smaller images, --scale, --tile or --batch-size, or fewer --workers"
    elif isinstance(exc, RecursionError):
        message = f"an input is nested too deeply to read ({exc})"
    elif isinstance(exc, OverflowError):
        message = f"a number is out of range ({exc})"
    elif isinstance(exc, ValueError) and "embedded null byte" in str(exc):
        message = "a file name contains a NUL byte"
    elif yaml is not None and isinstance(exc, yaml.YAMLError):
        from gains.config import yaml_problem

        message = f"not valid YAML ({yaml_problem(exc)})"
    else:
        return None
    return re.sub(r"\s*\n\s*", " ", message.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gains`` and ``python -m gains``; returns the exit code.

    Every expected failure (see ``expected_failure``) is one line ``gains CMD: error: MESSAGE`` on stderr and
    exit code 2 (``--verbose`` logs its traceback first); a bad option is argparse's error, also one line.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"gains {args.command}: interrupted (run the same command again to resume)", file=sys.stderr)
        return 130
    except Exception as exc:
        message = expected_failure(exc)
        if message is None:
            raise
        log.debug("gains %s failed:", args.command, exc_info=True)
        print(f"gains {args.command}: error: {message}", file=sys.stderr)
        return 2
