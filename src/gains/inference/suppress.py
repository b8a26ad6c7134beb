"""Crossing-aware suppression of duplicate detections, on instance crops after the masks are made.

Box NMS (torchvision's, inside the model, ``model.box_nms_thresh``) drops the lower-scored of two detections
whose BOXES overlap by more than the threshold. Two thin objects that cross have nearly the same box, so one of
them is lost, although their masks share only the crossing. Two rules work on the masks instead:

- ``mask_nms``: greedy by score, an instance is dropped when its MASK IoU with a kept, higher-scored one
  exceeds ``iou`` (the model then runs with its box NMS loosened to ``MASK_NMS_BOX_THRESH``, ``box_nms_for``,
  so that crossing pairs reach this step);
- ``drop_contained``: greedy by score, an instance is dropped when at least ``fraction`` of its pixels lie in a
  kept, higher-scored one (a nested duplicate: one nucleus found whole and again as a part).

Both compare instances of the same category only (a nucleus inside its cell is no duplicate), keep the survivors
in their given order with their scores, and test only the pairs whose boxes share a pixel (a vectorised box
sweep, ``candidate_pairs``), then those pairs' common box, so the work follows the touching pairs, not N^2.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from gains.core.masks import Instance, mask_overlap
from gains.core.pairs import candidate_pairs, crop_boxes

NMS_MODES = ("box", "mask")  # PredictOptions.nms: box NMS only (the model's), or mask NMS after a loose box NMS
MASK_NMS_BOX_THRESH = 0.9  # the model's box NMS IoU while mask NMS decides: only near-identical boxes go early


def check_suppression(nms: str, contained: float | None) -> None:
    """Refuse an unknown NMS mode or a containment fraction outside (0, 1].

    Raises:
        ValueError: naming the value.
    """
    if nms not in NMS_MODES:
        raise ValueError(f"nms must be one of {NMS_MODES}, got {nms!r}")
    if contained is not None and not 0.0 < contained <= 1.0:
        raise ValueError(f"the contained fraction must be in (0, 1], got {contained}")


def _shared_pixels(instances: Sequence[Instance]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, n) int64 arrays: pairs ``i < j`` of same-category instances whose masks share ``n`` > 0 pixels."""
    crops = [inst.mask for inst in instances]
    found = []
    for i, j in candidate_pairs(crop_boxes(crops)).tolist():
        if instances[i].category_id != instances[j].category_id:
            continue
        both = mask_overlap(crops[i], crops[j])
        if both is not None:
            found.append((i, j, int(np.count_nonzero(both[2]))))
    pairs = np.array(found, dtype=np.int64).reshape(-1, 3)
    return pairs[:, 0], pairs[:, 1], pairs[:, 2]


def _greedy(instances: Sequence[Instance], first: np.ndarray, second: np.ndarray, drop_first: np.ndarray,
            drop_second: np.ndarray) -> list[Instance]:
    """Keep instances by descending score (ties: given order); the pair (first[k], second[k]) removes ``first``
    when ``drop_first[k]`` and the other is kept and ranked higher (likewise ``second``). Given order kept."""
    rank = np.empty(len(instances), dtype=np.int64)
    rank[sorted(range(len(instances)), key=lambda k: -instances[k].score)] = np.arange(len(instances))
    threats: dict[int, list[int]] = {}
    for a, b, da, db in zip(first.tolist(), second.tolist(), drop_first.tolist(), drop_second.tolist(), strict=True):
        if da and rank[b] < rank[a]:
            threats.setdefault(a, []).append(b)
        if db and rank[a] < rank[b]:
            threats.setdefault(b, []).append(a)
    kept = np.zeros(len(instances), dtype=bool)
    for k in np.argsort(rank, kind="stable").tolist():
        kept[k] = not any(kept[other] for other in threats.get(k, ()))
    return [inst for inst, keep in zip(instances, kept, strict=True) if keep]


def mask_nms(instances: Sequence[Instance], iou: float) -> list[Instance]:
    """Instances left after greedy NMS on mask IoU (module docstring), in their given order.

    Args:
        instances: tight crops in image coordinates, any order.
        iou: an instance whose mask IoU with a kept, higher-scored instance of its category is above this goes.
    """
    i, j, shared = _shared_pixels(instances)
    area = np.array([inst.mask.area for inst in instances], dtype=np.int64)
    over = shared / np.maximum(area[i] + area[j] - shared, 1) > iou if len(i) else np.zeros(0, dtype=bool)
    return _greedy(instances, i, j, over, over)


def drop_contained(instances: Sequence[Instance], fraction: float) -> list[Instance]:
    """Instances left after dropping nested duplicates (module docstring), in their given order.

    Args:
        instances: tight crops in image coordinates, any order.
        fraction: an instance with at least this share of its pixels inside a kept, higher-scored instance of
            its category goes.
    """
    i, j, shared = _shared_pixels(instances)
    area = np.array([inst.mask.area for inst in instances], dtype=np.int64)
    return _greedy(instances, i, j, shared >= fraction * area[i], shared >= fraction * area[j])


def suppress(instances: list[Instance], nms: str, nms_iou: float, contained: float | None) -> list[Instance]:
    """``instances`` after ``mask_nms`` at ``nms_iou`` (``nms`` "mask"; "box": none) then ``drop_contained`` at
    ``contained`` (None: none); the given list itself when neither applies."""
    if nms == "mask":
        instances = mask_nms(instances, nms_iou)
    if contained is not None:
        instances = drop_contained(instances, contained)
    return instances


@contextmanager
def box_nms_for(model: Any, nms: str) -> Iterator[float]:
    """While open, ``model``'s box NMS IoU loosened to ``MASK_NMS_BOX_THRESH`` when ``nms`` is "mask" (never
    tightened; "box": unchanged); yields the model's own threshold, the one mask NMS then applies."""
    heads = model.roi_heads
    saved = heads.nms_thresh
    if nms == "mask":
        heads.nms_thresh = max(saved, MASK_NMS_BOX_THRESH)
    try:
        yield saved
    finally:
        heads.nms_thresh = saved
