"""``gains score``: score a COCO results file against a ground truth (see ``gains.evaluation.score``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gains.cli.args import non_negative_int, positive_int, probability


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains score`` to the subcommands."""
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
    p.set_defaults(func=run)


def print_metrics(metrics: dict) -> None:
    """Print every AP and per-image metric of ``metrics``, one per line (``gains score`` and ``gains eval``)."""
    from gains.evaluation.score import AP_KEYS, PER_IMAGE

    for key in (*AP_KEYS, *PER_IMAGE):
        value = metrics[key]
        print(f"{key:16s} {value:.4f}" if value is not None else f"{key:16s} n/a (no contact instance)")


def run(args: argparse.Namespace) -> int:
    """Score, write METRICS.json and the per-image CSV, print the metrics."""
    from gains.evaluation.score import score, write_metrics

    metrics, rows = score(args.gt, args.results, args.score_thresh, args.max_dets, args.contact_radius)
    out, csv_path = write_metrics(args.out, metrics, rows)
    print_metrics(metrics)
    print(f"wrote {out} and {csv_path}")
    return 0
