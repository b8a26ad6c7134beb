"""Do models learn from 12-bit microscopy images? The same synthetic scenes as 12-bit values in uint16 TIFFs,
trained with ``model.input_norm=percentile`` (the default) and ``dtype`` (the old behaviour), same config,
seed and iterations, through the CLI; both scored on the same held-out scenes (also 12-bit).

    .venv/bin/python -m benchmarks.studies.bench_bitdepth [--iters 150] [--size 256] [--out /tmp/bench_bitdepth]

Writes ``benchmarks/results/bench_bitdepth.json`` and prints a table: first and last loss (mean of 10
iterations), held-out segm/AP, bbox/AP, f1_50, aji_gains and the number of detections at score >= 0.5.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks import RESULTS

MODES = ("percentile", "dtype")


def to_twelve_bit(src: Path, dst: Path) -> Path:
    """Copy a canonical dataset with each 8-bit image v rewritten as the 12-bit value 80 + 15.7 v (uint16 TIFF)."""
    import tifffile

    from gains.core.images import read_image

    doc = json.loads((src / "annotations.json").read_text())
    (dst / "images").mkdir(parents=True, exist_ok=True)
    for image in doc["images"]:
        pixels = read_image(src / "images" / image["file_name"]).astype(np.float64)
        twelve = np.clip(80 + pixels * (4015 / 255), 0, 4095).astype(np.uint16)
        name = Path(image["file_name"]).with_suffix(".tif").name
        tifffile.imwrite(dst / "images" / name, twelve)
        image["file_name"] = name
    (dst / "annotations.json").write_text(json.dumps(doc))
    return dst / "annotations.json"


def gains(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "gains", *args], check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iters", type=int, default=150)
    p.add_argument("--size", type=int, default=256, help="scene side in pixels")
    p.add_argument("--out", type=Path, default=Path("/tmp/bench_bitdepth"))
    args = p.parse_args()
    out = args.out
    data = {}
    for split, n, seed in (("train", 48, 0), ("val", 12, 1)):
        if not (out / f"{split}12" / "annotations.json").exists():
            gains("synth", "touch", "--n", str(n), "--size", str(args.size), "--seed", str(seed),
                  "--out", str(out / split))
            to_twelve_bit(out / split, out / f"{split}12")
        data[split] = out / f"{split}12" / "annotations.json"
    sample = np.asarray(__import__("tifffile").imread(next((out / "train12" / "images").glob("*.tif"))))
    rows = []
    for mode in MODES:
        run = out / f"run_{mode}"
        sched = [f"train.max_iters={args.iters}", f"train.warmup_iters={args.iters // 6}",
                 f"train.steps=[{int(args.iters * 0.75)},{int(args.iters * 0.92)}]", "train.eval_period=0",
                 "train.checkpoint_period=0"]
        if not (run / "last.pt").exists():
            gains("train", "--config", "synthetic_touch_cpu",
                  "--set", "data.synthetic=null", "--set", f"data.train={data['train']}",
                  "--set", f"data.val={data['val']}", "--set", f"model.input_norm={mode}",
                  "--set", f"model.min_size_train=[{args.size}]", "--set", f"model.min_size_test={args.size}",
                  *[x for s in sched for x in ("--set", s)], "--out", str(run), "--quiet")
        gains("eval", str(run), "--data", str(data["val"]), "--out", str(run / "eval"), "--device", "cpu")
        metrics = json.loads((run / "eval" / "METRICS.json").read_text())
        results = json.loads((run / "eval" / "results.json").read_text())
        losses = [json.loads(ln)["loss"] for ln in (run / "metrics.jsonl").read_text().splitlines()
                  if "loss" in json.loads(ln)]
        rows.append({"input_norm": mode, "iterations": len(losses), "loss_first10": float(np.mean(losses[:10])),
                     "loss_last10": float(np.mean(losses[-10:])),
                     **{k: metrics[k] for k in ("segm/AP", "bbox/AP", "f1_50", "aji_gains")},
                     "detections_at_0.5": sum(r["score"] >= 0.5 for r in results),
                     "best_score": max((r["score"] for r in results), default=0.0)})
    report = {"command": "python -m benchmarks.studies.bench_bitdepth " + " ".join(sys.argv[1:]),
              "pixels": {"min": int(sample.min()), "median": float(np.median(sample)), "max": int(sample.max())},
              "rows": rows}
    (RESULTS).mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_bitdepth.json").write_text(json.dumps(report, indent=1))
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
