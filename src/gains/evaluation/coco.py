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
    silently caps at 100 otherwise, and its summary ignores other values; see ``summarize_ap``). A
    warning is logged when an image holds more ground-truth instances than ``max_dets``. With no result
    at all every AP is 0. ``cat_ids`` restricts the evaluation (and its category average) to those
    categories.
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
        log.warning("%s: an image has %s ground-truth instances, more than max_dets=%s", gt_json, int(max(counts)),
                    max_dets)
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes([dict(r) for r in results])  # loadRes adds keys to the dicts it gets
        ev = COCOeval(gt, dt, iou_type)
        ev.params.maxDets = sorted({1, 10, max_dets})  # duplicates confuse COCOeval.accumulate
        ev.params.imgIds = sorted(gt.getImgIds())
        if cat_ids is not None:
            ev.params.catIds = list(cat_ids)
        ev.evaluate()
        ev.accumulate()
    return summarize_ap(ev.eval["precision"][..., ev.params.maxDets.index(max_dets)], ev.params.iouThrs)


def summarize_ap(precision: np.ndarray, iou_thrs: np.ndarray) -> dict[str, float]:
    """AP, AP50, AP75 from COCOeval's precision array [T, R, K, A] (one maxDets) at area 'all'.

    pycocotools' own ``summarize`` computes its headline AP with maxDets=100 whatever ``params.maxDets``
    says (it returns -1 when 100 is not in the list), so the numbers are read here instead.
    """
    def mean_valid(p: np.ndarray) -> float:
        valid = p[p > -1]
        return float(valid.mean()) if valid.size else 0.0

    at = precision[:, :, :, 0]
    t50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
    t75 = int(np.argmin(np.abs(iou_thrs - 0.75)))
    return {"AP": mean_valid(at), "AP50": mean_valid(at[t50]), "AP75": mean_valid(at[t75])}
