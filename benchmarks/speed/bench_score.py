"""Scoring speed: ``gains score`` (every metric) against plain pycocotools segm evaluation, same files.

Ground truth: the DSB2018 cluster-nuclei proxy (156 images, 15,480 instances) converted to the canonical
form; predictions: every ground-truth mask shifted by 1-3 pixels, a few dropped, random scores (a result
file of similar size). Both scorers read the same two files.

    .venv/bin/python -m benchmarks.speed.bench_score [--json benchmarks/results/bench_score.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import RESULTS, ROOT

SHARED = Path(os.environ.get("GAINS_SHARED", ROOT.parent / "shared"))


def make_results(gt: Path, seed: int = 0) -> list[dict]:
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    doc = json.loads(gt.read_text())
    out = []
    for a in doc["annotations"]:
        if rng.random() < 0.05:
            continue
        rle = {"size": a["segmentation"]["size"], "counts": a["segmentation"]["counts"].encode()}
        m = np.roll(mask_utils.decode(rle), int(rng.integers(1, 4)), axis=int(rng.integers(0, 2)))
        enc = mask_utils.encode(np.asfortranarray(m))
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "score": float(rng.random()),
                    "segmentation": {"size": enc["size"], "counts": enc["counts"].decode()}})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, default=RESULTS / "bench_score.json")
    args = p.parse_args()
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from gains.data.dsb2018 import convert_dsb2018
    from gains.evaluation.coco import summarize_ap
    from gains.evaluation.score import score

    root = SHARED / "data" / "dsb2018" / "stage1_train"
    if not root.is_dir():
        raise SystemExit(f"{root}: not available")
    with tempfile.TemporaryDirectory() as tmp:
        gt = convert_dsb2018(root, Path(tmp) / "cn", subset=root.parent / "cluster_nuclei_proxy.txt", workers=2,
                             progress=False)
        res = Path(tmp) / "results.json"
        results = make_results(gt)
        res.write_text(json.dumps(results))
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(gt))
            ev = COCOeval(coco, coco.loadRes(str(res)), "segm")
            ev.params.maxDets = [1, 10, 500]
            ev.evaluate()
            ev.accumulate()
        plain_s = time.perf_counter() - t0
        plain_ap = summarize_ap(ev.eval["precision"][..., -1], ev.params.iouThrs)["AP"]
        t0 = time.perf_counter()
        metrics, _ = score(gt, res, max_dets=500)
        ours_s = time.perf_counter() - t0
    row = {"images": 156, "predictions": len(results), "pycocotools_segm_s": plain_s, "gains_score_s": ours_s,
           "ratio": ours_s / plain_s, "segm_AP_pycocotools": plain_ap, "segm_AP_gains": metrics["segm/AP"],
           "aji_gains": metrics["aji_gains"], "dsb_score": metrics["dsb_score"]}
    print(f"pycocotools segm eval (AP only): {plain_s:6.1f} s   segm/AP {row['segm_AP_pycocotools']:.4f}")
    print(f"gains score (AP + 6 metrics):     {ours_s:6.1f} s   segm/AP {row['segm_AP_gains']:.4f}")
    print(f"ratio gains / pycocotools: {row['ratio']:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(row, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
