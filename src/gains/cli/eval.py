"""``gains eval``: predict a dataset split with a checkpoint and score it (see ``gains.inference.eval_run``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gains.cli.args import device, positive_int, probability
from gains.cli.predict import add_scale_options, add_suppression_options, add_tile_options, predict_options
from gains.cli.score import print_metrics


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains eval`` to the subcommands."""
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
    add_tile_options(p)
    add_scale_options(p)
    add_suppression_options(p)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override inference settings, e.g. model.detections_per_img=300")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Predict the split as ``gains predict`` does, score it, print the metrics."""
    from gains.inference.eval_run import evaluate_checkpoint

    metrics = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.out, predict_options(args),
                                  args.score_thresh, args.max_dets, progress=not args.quiet)
    print(metrics["scale_note"])
    print_metrics(metrics)
    print(f"wrote {args.out / 'results.json'}, {args.out / 'METRICS.json'}")
    return 0
