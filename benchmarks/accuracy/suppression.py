"""Crossing-aware suppression, A/B on one checkpoint: box NMS against mask NMS, containment off against on.

Evaluates the same checkpoint on the same split four times, as ``gains eval`` does
(``gains.inference.eval_run.evaluate_checkpoint``), with ``--nms box|mask`` x ``--drop-contained off|F``, and
writes one JSON with, per arm, segm/AP, segm/AP50, segm/AP75, bbox/AP, contact_iou and contact_recall50 (the
all-category means ``gains eval`` prints), the number of results, and the seconds: ``eval_seconds`` (model load,
prediction and scoring) and ``predict_seconds`` (that less a second timing of the scoring alone on the arm's
results). The load average before and after is kept beside the times: compare times of arms of one run only.

    .venv/bin/python -m benchmarks.accuracy.suppression RUN --data DATA [--split test] [--contained 0.8] \\
        [--device cpu] [--out benchmarks/results/suppression/NAME]

RUN is a run folder, checkpoint or shipped model; DATA a canonical dataset folder (a synthetic preset's run
keeps its held-out scenes in ``RUN/data/val``, split ``all``). Each arm's evaluation stays in ``OUT/<arm>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks import RESULTS

METRICS = ("segm/AP", "segm/AP50", "segm/AP75", "bbox/AP", "contact_iou", "contact_recall50")


def arms(contained: float) -> list[tuple[str, float | None]]:
    """The (nms, drop_contained) pairs compared: box and mask NMS, each without and with containment."""
    return [("box", None), ("box", contained), ("mask", None), ("mask", contained)]


def arm_name(nms: str, contained: float | None) -> str:
    """Folder name of an arm, e.g. ``mask-contained0.8`` or ``box``."""
    return nms if contained is None else f"{nms}-contained{contained:g}"


def run_arm(checkpoint: str, data: Path, split: str, out: Path, nms: str, contained: float | None,
            device: str) -> dict[str, Any]:
    """Evaluate one arm into ``out`` and return its row (module docstring)."""
    from gains.evaluation.score import score
    from gains.inference.eval_run import evaluate_checkpoint, split_file
    from gains.inference.predictor import PredictOptions

    load = os.getloadavg()[0]
    start = time.perf_counter()
    metrics = evaluate_checkpoint(checkpoint, data, split, out, PredictOptions(device=device, nms=nms,
                                                                               contained=contained))
    eval_seconds = time.perf_counter() - start
    start = time.perf_counter()
    score(split_file(data, split), out / "results.json")
    score_seconds = time.perf_counter() - start
    results = json.loads((out / "results.json").read_text())
    return {"nms": nms, "drop_contained": contained, **{k: metrics.get(k) for k in METRICS},
            "results": len(results), "eval_seconds": round(eval_seconds, 2),
            "predict_seconds": round(eval_seconds - score_seconds, 2),
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    """Run every arm and write ``OUT/suppression.json``; print one line per arm."""
    from gains.sysinfo import cpu_facts

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="run folder, checkpoint file or shipped model name")
    p.add_argument("--data", type=Path, required=True, help="canonical dataset folder (or a COCO json)")
    p.add_argument("--split", default="test", help="train, val, test or all (default test)")
    p.add_argument("--contained", type=float, default=0.8, help="the containment arm's fraction (default 0.8)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="default benchmarks/results/suppression/<checkpoint name>")
    args = p.parse_args(argv)
    out = args.out or RESULTS / "suppression" / Path(args.checkpoint).resolve().name
    rows = []
    for nms, contained in arms(args.contained):
        row = run_arm(args.checkpoint, args.data, args.split, out / arm_name(nms, contained), nms, contained,
                      args.device)
        rows.append(row)
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    doc = {"checkpoint": str(args.checkpoint), "data": str(args.data), "split": args.split, "device": args.device,
           "cpu": cpu_facts(), "arms": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "suppression.json").write_text(json.dumps(doc, indent=1))
    print(f"wrote {out / 'suppression.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
