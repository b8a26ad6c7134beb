"""Prediction speed and peak memory: 512x512 images whole, and large images through tiling.

Each case runs in its own process (peak resident memory = VmHWM of that process). The model is a
ResNet-18/GroupNorm GAInS (as the CPU presets) with random weights and a score threshold of 0, so every
tile yields its full quota of detections (the worst case for merging and memory); ``maskrcnn`` runs the
same cases as the baseline. The image is synthetic noise of the given size (uint8 RGB).

    .venv/bin/python -m benchmarks.speed.bench_predict [--huge]   # --huge adds a 10000 x 10000 image
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import RESULTS, ROOT


def child(variant: str, size: int, count: int, tile: int) -> dict:
    import numpy as np
    import torch

    from gains.config import ModelConfig
    from gains.inference.predictor import Predictor
    from gains.models.build import build_model
    from gains.sysinfo import peak_rss_mib

    torch.manual_seed(0)
    cfg = ModelConfig(variant=variant, backbone="resnet18", norm="gn", min_size_train=[512], min_size_test=512,
                      max_size=1024, detections_per_img=100, rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=150)
    model = build_model(cfg, 1).eval()
    predictor = Predictor(model, [{"label": 1, "id": 1, "name": "object"}], torch.device("cpu"), tile=tile,
                          overlap=128, scale=1.0, score_thresh=0.0)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    predictor.predict(image[:512, :512])  # warm-up
    t0 = time.perf_counter()
    n = 0
    for _ in range(count):
        n += len(predictor.predict(image))
    dt = time.perf_counter() - t0
    return {"variant": variant, "size": size, "images": count, "tiles": len(predictor.tiles(size, size)),
            "seconds": dt, "images_per_s": count / dt, "instances": n // count, "peak_mib": peak_rss_mib()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--huge", action="store_true", help="also a 10000 x 10000 image")
    p.add_argument("--json", type=Path, default=RESULTS / "bench_predict.json")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        v, size, count, tile = args.child
        print(json.dumps(child(v, int(size), int(count), int(tile))))
        return
    cases = [(512, 5), (4096, 1)] + ([(10000, 1)] if args.huge else [])
    rows = []
    for size, count in cases:
        for variant in ("maskrcnn", "gains"):
            cmd = [sys.executable, "-m", __spec__.name, "--child", variant, str(size), str(count), "1024"]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
            row = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{variant:9s} {size:6d}px  tiles {row['tiles']:4d}  {row['images_per_s']:8.3f} img/s  "
                  f"{row['instances']:6d} instances/img  peak {row['peak_mib']:7.0f} MiB", flush=True)
    for size, _ in cases:
        a, b = (next(r for r in rows if r["variant"] == v and r["size"] == size) for v in ("maskrcnn", "gains"))
        print(f"{size}px: gains / maskrcnn time {a['images_per_s'] / b['images_per_s']:.2f}, "
              f"peak {b['peak_mib'] / a['peak_mib']:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
