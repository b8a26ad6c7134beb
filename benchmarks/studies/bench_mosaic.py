"""One scale rule whatever the image size: held-out scenes predicted alone, and the same scenes tiled into one
mosaic predicted whole and in tiles, all through ``gains predict`` and scored with ``gains score``.

The scenes are held-out images of one size from a COCO json (default: the ``nuclei`` model's cluster test
part, made by ``python -m benchmarks.release.zoo --model nuclei --out DIR --stage prepare``), laid out
``--grid R C``; the mosaic's ground truth is the scenes' instances shifted into place. With the model's scale
rule the three scores should agree (before the rule, an image up to the tile size was shrunk to the test size: a 1024 px
mosaic of sixteen 256 px scenes lost three quarters of its AP). AP counts at most ``--max-dets`` detections
per scene, so the mosaic is scored with that many per scene it holds (``gains score --max-dets``): with
one cap for both, a mosaic of 9 scenes could keep only a ninth of its objects.

    .venv/bin/python -m benchmarks.studies.bench_mosaic [--model nuclei] [--data DIR/data/all/test_cluster.json]
        [--grid 3 3] [--tile 512] [--max-dets 400] [--repeat] [--merges union central]
        [--json benchmarks/results/bench_mosaic.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import RESULTS
from gains.core.images import read_image
from gains.core.masks import MaskCrop, crop_bbox, crop_to_rle, segmentation_to_crop


def pick_scenes(doc: dict, count: int, repeat: bool = False) -> list[dict]:
    """The first ``count`` images (by id) of the most common size; with ``repeat``, the first one ``count``
    times (a mosaic of one scene: the same content everywhere, so the image-wide input normalisation and
    GroupNorm statistics stay close to the scene's own)."""
    size = Counter((i["height"], i["width"]) for i in doc["images"]).most_common(1)[0][0]
    same = sorted((i for i in doc["images"] if (i["height"], i["width"]) == size), key=lambda i: i["id"])
    if repeat:
        return same[:1] * count
    if len(same) < count:
        raise SystemExit(f"only {len(same)} images of {size[0]}x{size[1]}; a smaller --grid is needed")
    return same[:count]


def gt_entry(image_id: int, ann_id: int, category: int, crop: MaskCrop, height: int, width: int) -> dict:
    """A COCO ground-truth annotation of one instance crop in a (height, width) image."""
    return {"id": ann_id, "image_id": image_id, "category_id": category,
            "segmentation": crop_to_rle(crop, height, width), "area": float(crop.area), "bbox": crop_bbox(crop),
            "iscrowd": 0}


def build(doc: dict, images_dir: Path, grid: tuple[int, int], out: Path, repeat: bool = False
          ) -> tuple[list[Path], Path, Path, Path, tuple[int, int]]:
    """Write the scenes and the mosaic as RGB PNGs and their ground truths; returns (scene files, scenes gt,
    mosaic file, mosaic gt, mosaic (height, width)). Image ids follow ``gains predict``: 1.. in the order the
    files are given."""
    rows, cols = grid
    scenes = pick_scenes(doc, rows * cols, repeat)
    h, w = scenes[0]["height"], scenes[0]["width"]
    by_image: dict[int, list[dict]] = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    mosaic = np.zeros((rows * h, cols * w, 3), np.uint8)
    files, scene_gt, mosaic_gt = [], [], []
    for k, info in enumerate(scenes):
        img = read_image(images_dir / info["file_name"])
        img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
        path = out / f"scene_{k:02d}.png"
        Image.fromarray(img).save(path)
        files.append(path)
        r, c = divmod(k, cols)
        mosaic[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
        for a in by_image.get(info["id"], []):
            crop = segmentation_to_crop(a["segmentation"], h, w)
            if crop is None:
                continue
            scene_gt.append(gt_entry(k + 1, len(scene_gt) + 1, a["category_id"], crop, h, w))
            placed = MaskCrop(crop.y0 + r * h, crop.x0 + c * w, crop.mask)
            mosaic_gt.append(gt_entry(1, len(mosaic_gt) + 1, a["category_id"], placed, rows * h, cols * w))
    Image.fromarray(mosaic).save(out / "mosaic.png")
    cats = doc["categories"]
    scenes_json, mosaic_json = out / "scenes_gt.json", out / "mosaic_gt.json"
    scenes_json.write_text(json.dumps({"images": [{"id": k + 1, "file_name": f.name, "height": h, "width": w}
                                                  for k, f in enumerate(files)],
                                       "annotations": scene_gt, "categories": cats}))
    mosaic_json.write_text(json.dumps({"images": [{"id": 1, "file_name": "mosaic.png", "height": rows * h,
                                                   "width": cols * w}], "annotations": mosaic_gt,
                                       "categories": cats}))
    return files, scenes_json, out / "mosaic.png", mosaic_json, (rows * h, cols * w)


def gains(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "gains", *args], check=True, capture_output=True, text=True)
    return done.stdout + done.stderr


def predict_and_score(model: str, inputs: list[Path], gt: Path, work: Path, extra: list[str], max_dets: int
                      ) -> dict:
    """Predict ``inputs`` with ``model`` (``extra``: predict options), score against ``gt`` with at most
    ``max_dets`` detections per image; segm/AP, AP50, aji_gains, the instance count and the scale line."""
    log = gains("predict", model, *map(str, inputs), "--out", str(work / "pred"), "--format", "coco", "--quiet",
                *extra)
    gains("score", str(gt), str(work / "pred" / "results.json"), "--out", str(work / "METRICS.json"),
          "--max-dets", str(max_dets))
    metrics = json.loads((work / "METRICS.json").read_text())
    scale = [ln for ln in log.splitlines() if "scale" in ln.lower()]
    return {"segm/AP": metrics["segm/AP"], "segm/AP50": metrics["segm/AP50"], "aji_gains": metrics["aji_gains"],
            "predicted": len(json.loads((work / "pred" / "results.json").read_text())),
            "scale_line": scale[0] if scale else ""}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="nuclei")
    p.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "zoo_nuclei" / "data" / "all"
                   / "test_cluster.json")
    p.add_argument("--images", type=Path, help="images folder (default: images/ beside --data)")
    p.add_argument("--grid", type=int, nargs=2, default=[3, 3], metavar=("ROWS", "COLS"))
    p.add_argument("--tile", type=int, default=512, help="tile side of the tiled run, network pixels")
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--max-dets", type=int, default=400, help="detections per scene counted by AP (the mosaic: "
                   "this many per scene in it)")
    p.add_argument("--merges", nargs="+", choices=("central", "union"), default=["central"],
                   help="tile merge rules of the tiled runs (gains predict --tile-merge), one row each")
    p.add_argument("--repeat", action="store_true", help="one scene repeated over the grid (see pick_scenes)")
    p.add_argument("--json", type=Path, default=RESULTS / "bench_mosaic.json")
    args = p.parse_args(argv)
    if not args.data.exists():
        raise SystemExit(f"{args.data}: not found; make it with python -m benchmarks.release.zoo --model nuclei "
                         "--out DIR --stage prepare")
    doc = json.loads(args.data.read_text())
    with tempfile.TemporaryDirectory(prefix="gains_mosaic_") as tmp:
        work = Path(tmp)
        files, scenes_gt, mosaic, mosaic_gt, size = build(doc, args.images or args.data.parent / "images",
                                                          tuple(args.grid), work, args.repeat)
        per_mosaic = args.max_dets * len(files)
        rows = {
            "scenes alone": predict_and_score(args.model, files, scenes_gt, work / "alone", [], args.max_dets),
            "mosaic whole": predict_and_score(args.model, [mosaic], mosaic_gt, work / "whole", ["--tile", "0"],
                                              per_mosaic),
        }
        for merge in args.merges:
            rows[f"mosaic tiled, {merge}"] = predict_and_score(
                args.model, [mosaic], mosaic_gt, work / f"tiled_{merge}",
                ["--tile", str(args.tile), "--overlap", str(args.overlap), "--tile-merge", merge], per_mosaic)
    result = {"model": args.model, "data": str(args.data), "grid": args.grid, "mosaic": list(size),
              "scene_files": [f.name for f in files], "tile": args.tile, "overlap": args.overlap,
              "max_dets_per_scene": args.max_dets, "repeat": args.repeat, "rows": rows}
    for name, r in rows.items():
        print(f"{name:<14} segm/AP {r['segm/AP']:.4f}  AP50 {r['segm/AP50']:.4f}  aji_gains {r['aji_gains']:.4f}  "
              f"{r['predicted']} instances  | {r['scale_line']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
