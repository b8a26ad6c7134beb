"""Pairs of instance masks that overlap or touch, found without N^2 work or full-size arrays.

Boxes are swept first (``candidate_pairs``: sorted by top row, each box meets only the boxes that start above
its bottom), then each candidate pair is tested on the pixels of the two crops' common box. Two masks
*overlap* when they share a pixel and *touch* when they share none but a pixel of each lies within one row and
one column of the other (8-adjacent, diagonals included). Used by the measurements table, the label layers,
the mask suppression of predict and patch training's contact windows. numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import binary_dilation

from gains.core.masks import MaskCrop, mask_overlap

Region = tuple[int, int, np.ndarray]  # (y0, x0, bool crop) in image pixels


def candidate_pairs(boxes: np.ndarray, gap: int = 0) -> np.ndarray:
    """Pairs of boxes that intersect once each is grown by ``gap`` pixels on its far sides.

    Args:
        boxes: int (N, 4) ``y0, x0, y1, x1``, half-open.
        gap: 0: the boxes share a pixel; 1: they share one or are adjacent (8-connected).

    Returns:
        int64 (P, 2) index pairs ``i < j``. Sorted by ``y0``, each box meets only the run of boxes that start
        above its bottom (a ``searchsorted`` per box), so the work grows with the pairs, not with N squared.
    """
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    n = len(boxes)
    order = np.argsort(boxes[:, 0], kind="stable")
    y0, x0, y1, x1 = boxes[order].T
    ends = np.searchsorted(y0, y1 + gap, side="left")  # sorted k < ends[i] start above i's bottom (+ gap)
    counts = np.maximum(ends - np.arange(1, n + 1), 0)
    first = np.repeat(np.arange(n), counts)
    second = first + 1 + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    near = (x0[second] < x1[first] + gap) & (x0[first] < x1[second] + gap)
    a, b = order[first[near]], order[second[near]]
    return np.column_stack((np.minimum(a, b), np.maximum(a, b)))


def crop_boxes(crops: Sequence[MaskCrop]) -> np.ndarray:
    """int64 (N, 4) ``y0, x0, y1, x1`` (half-open) of mask crops."""
    return np.array([(c.y0, c.x0, c.y1, c.x1) for c in crops], dtype=np.int64).reshape(-1, 4)


def overlapping_pairs(crops: Sequence[MaskCrop]) -> list[tuple[int, int]]:
    """Index pairs ``i < j`` of masks sharing at least one pixel, sorted: boxes swept (``candidate_pairs``), then
    the pixels of each candidate pair's common box tested."""
    pairs = candidate_pairs(crop_boxes(crops)).tolist()
    return sorted((i, j) for i, j in pairs if mask_overlap(crops[i], crops[j]) is not None)


def contact_regions(crops: Sequence[MaskCrop]) -> dict[tuple[int, int], tuple[bool, Region]]:
    """Every pair ``i < j`` of masks that overlap or touch, with whether they overlap and where they meet.

    Returns:
        {(i, j): (overlap, (y0, x0, bool crop))}: for an overlapping pair the pixels both hold; for a touching
        pair (no shared pixel, 8-adjacent) the pixels of ``j`` next to ``i``.
    """
    found: dict[tuple[int, int], tuple[bool, Region]] = {}
    grown: dict[int, MaskCrop] = {}
    for i, j in candidate_pairs(crop_boxes(crops), gap=1).tolist():
        shared = mask_overlap(crops[i], crops[j])
        if shared is not None:
            found[(i, j)] = (True, shared)
            continue
        if i not in grown:
            c = crops[i]
            grown[i] = MaskCrop(c.y0 - 1, c.x0 - 1, binary_dilation(np.pad(c.mask, 1), np.ones((3, 3), bool)))
        near = mask_overlap(grown[i], crops[j])
        if near is not None:
            found[(i, j)] = (False, near)
    return found


def contacts(crops: Sequence[MaskCrop]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Overlapping and touching pairs of instance masks (``contact_regions``), as index pairs ``i < j``.

    Returns:
        (overlapping, touching): sorted lists; a pair is in at most one of them.
    """
    found = contact_regions(crops)
    return sorted(p for p, (o, _) in found.items() if o), sorted(p for p, (o, _) in found.items() if not o)
