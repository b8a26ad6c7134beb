"""COCO mask/box AP through pycocotools, with the detection cap really set to ``max_dets``."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("gains.evaluation")


def coco_ap(gt_json: str | Path, results: list[dict[str, Any]], iou_type: str = "segm", max_dets: int = 100,
            cat_ids: list[int] | None = None) -> dict[str, float]:
    """AP, AP50, AP75 (fractions in [0, 1]) of COCO results against a ground-truth file.

    maxDets are [1, 10, max_dets]: the reported AP uses ``max_dets`` detections per image (pycocotools
    silently caps at 100 otherwise). A warning is logged when an image holds more ground-truth
    instances than ``max_dets``. With no result at all every AP is 0. ``cat_ids`` restricts the
    evaluation (and its category average) to those categories.
    """
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_json))
        missing = [a for a in gt.dataset["annotations"] if not {"area", "iscrowd", "bbox"} <= set(a)]
        for a in missing:  # pycocotools needs all three; fill them from the mask
            a.setdefault("iscrowd", 0)
            rle = gt.annToRLE(a)
            a.setdefault("area", float(mask_utils.area(rle)))
            a.setdefault("bbox", [float(v) for v in mask_utils.toBbox(rle)])
        if missing:
            gt.createIndex()
    counts = np.bincount([a["image_id"] for a in gt.dataset["annotations"]]) if gt.dataset["annotations"] else [0]
    if max(counts) > max_dets:
        log.warning("%s: an image has %d ground-truth instances, more than max_dets=%d", gt_json, max(counts),
                    max_dets)
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes([dict(r) for r in results])  # loadRes adds keys to the dicts it gets
        ev = COCOeval(gt, dt, iou_type)
        ev.params.maxDets = [1, 10, max_dets]
        ev.params.imgIds = sorted(gt.getImgIds())
        if cat_ids is not None:
            ev.params.catIds = list(cat_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": float(max(ev.stats[0], 0.0)), "AP50": float(max(ev.stats[1], 0.0)),
            "AP75": float(max(ev.stats[2], 0.0))}
