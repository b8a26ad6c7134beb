"""Contact-region metrics: how well instances are segmented where they touch, cross or overlap.

Per image and category, from the ground truths (G) and the kept predictions (D, score >= threshold):

- contact pixels K: pixels that belong to two or more ground truths, and pixels of a ground truth with a
  4-neighbour in another ground truth (a pixel of an overlap counts for every instance that holds it);
- contact zone Z: K dilated by ``radius`` pixels with a (2r+1) x (2r+1) square;
- contact instances: ground truths with at least one pixel in Z;
- matching: the one-to-one greedy matching at IoU > 0.5 of ``pq`` (``metrics.greedy_matches``);
- ``contact_iou``: mean over contact instances g of |g ∩ d ∩ Z| / |(g ∪ d) ∩ Z|, d the prediction matched
  to g (0 when g is unmatched); ``contact_recall50``: the share of contact instances that are matched.

An image without a contact instance gets NaN (left out of the averages, not scored 0). Masks are COCO RLEs;
ground truths are decoded once each, the zone is an RLE and the zone intersections are RLE operations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from gains.evaluation.metrics import greedy_matches, iou_matrix

CONTACT = ("contact_iou", "contact_recall50")
CROSS = ndimage.generate_binary_structure(2, 1)


def _crops(rles: list[dict[str, Any]]) -> list[tuple[int, int, np.ndarray]]:
    """(y0, x0, bool crop) of each RLE over its bounding box (decoded in chunks to bound memory)."""
    from pycocotools import mask as mask_utils

    out = []
    for k in range(0, len(rles), 32):
        chunk = rles[k : k + 32]
        dense = mask_utils.decode(chunk)
        boxes = mask_utils.toBbox(chunk)
        for j in range(len(chunk)):
            x, y, w, h = (int(v) for v in np.round(boxes[j]))
            out.append((y, x, dense[y : y + h, x : x + w, j].astype(bool)))
    return out


def contact_zone(gt_rles: list[dict[str, Any]], height: int, width: int, radius: int
                 ) -> tuple[np.ndarray, list[bool]]:
    """(Z as a bool (H, W) array, per ground truth whether it is a contact instance); see the module docstring."""
    crops = _crops(gt_rles)
    count = np.zeros((height, width), dtype=np.int32)
    for y, x, m in crops:
        count[y : y + m.shape[0], x : x + m.shape[1]] += m
    contact = np.zeros((height, width), dtype=bool)
    for y, x, m in crops:
        y0, x0 = max(y - 1, 0), max(x - 1, 0)
        y1, x1 = min(y + m.shape[0] + 1, height), min(x + m.shape[1] + 1, width)
        own = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        own[y - y0 : y - y0 + m.shape[0], x - x0 : x - x0 + m.shape[1]] = m
        others = (count[y0:y1, x0:x1] - own) > 0
        contact[y0:y1, x0:x1] |= own & ndimage.binary_dilation(others, CROSS)
    zone = ndimage.maximum_filter(contact, size=2 * radius + 1, mode="constant") if radius > 0 else contact
    touching = [bool(zone[y : y + m.shape[0], x : x + m.shape[1]][m].any()) for y, x, m in crops]
    return zone, touching


def contact_metrics(dt_rles: list[dict[str, Any]], gt_rles: list[dict[str, Any]], inter: np.ndarray,
                    area_d: np.ndarray, area_g: np.ndarray, radius: int = 2) -> dict[str, float]:
    """``contact_iou`` and ``contact_recall50`` of one image and category (NaN without contact instances).

    Args:
        dt_rles, gt_rles: kept predictions and ground truths as COCO RLEs of one image size.
        inter, area_d, area_g: [D, G] intersections and areas, as for ``metrics``.
        radius: the zone's dilation in pixels (of the images the RLEs are in).
    """
    from pycocotools import mask as mask_utils

    nan = {k: float("nan") for k in CONTACT}
    if len(gt_rles) < 2:
        return nan
    height, width = (int(v) for v in gt_rles[0]["size"])
    zone, touching = contact_zone(gt_rles, height, width, radius)
    members = [j for j, t in enumerate(touching) if t]
    if not members:
        return nan
    pairs = greedy_matches(iou_matrix(inter, area_d, area_g), 0.5) if len(dt_rles) else []
    match = {g: d for d, g in pairs}
    z = mask_utils.encode(np.asfortranarray(zone.astype(np.uint8)))

    def zone_area(*rles: dict[str, Any]) -> float:
        return float(mask_utils.area(mask_utils.merge([*rles, z], intersect=True)))

    ious = []
    for j in members:
        d = match.get(j)
        if d is None:
            ious.append(0.0)
            continue
        gz, dz, both = zone_area(gt_rles[j]), zone_area(dt_rles[d]), zone_area(gt_rles[j], dt_rles[d])
        union = gz + dz - both
        ious.append(both / union if union > 0 else 0.0)
    return {"contact_iou": float(np.mean(ious)),
            "contact_recall50": float(np.mean([j in match for j in members]))}


__all__ = ["CONTACT", "contact_metrics", "contact_zone"]
