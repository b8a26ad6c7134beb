"""How the detections of overlapping tiles become one set (``Predictor.combine``; rules in
``gains.inference.predictor``'s docstring): ``keep_central`` (each detection from the tile whose core holds its
box centre) and ``merge_tiles`` (masks that agree across a seam joined). Instances are crops in image
coordinates; numpy only."""

from __future__ import annotations

import numpy as np

from gains.core.masks import Instance, MaskCrop, tight_crop


def _band_iou(a: MaskCrop, b: MaskCrop, band: tuple[int, int, int, int]) -> float:
    """Mask IoU of two crops restricted to the region ``band`` (y0, x0, y1, x1)."""
    y0, x0, y1, x1 = band
    y0, x0 = max(y0, min(a.y0, b.y0)), max(x0, min(a.x0, b.x0))
    y1, x1 = min(y1, max(a.y1, b.y1)), min(x1, max(a.x1, b.x1))
    if y0 >= y1 or x0 >= x1:
        return 0.0
    ma = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    mb = np.zeros_like(ma)
    for crop, canvas in ((a, ma), (b, mb)):
        ry0, rx0 = max(crop.y0, y0), max(crop.x0, x0)
        ry1, rx1 = min(crop.y1, y1), min(crop.x1, x1)
        if ry0 < ry1 and rx0 < rx1:
            canvas[ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0] = crop.mask[ry0 - crop.y0 : ry1 - crop.y0,
                                                                         rx0 - crop.x0 : rx1 - crop.x0]
    union = np.count_nonzero(ma | mb)
    return np.count_nonzero(ma & mb) / union if union else 0.0


def _union(items: list[Instance]) -> Instance:
    y0, x0 = min(i.mask.y0 for i in items), min(i.mask.x0 for i in items)
    y1, x1 = max(i.mask.y1 for i in items), max(i.mask.x1 for i in items)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    ga = np.ones(mask.shape, dtype=np.float32) if all(i.ga is not None for i in items) else None
    for i in items:
        sl = (slice(i.mask.y0 - y0, i.mask.y1 - y0), slice(i.mask.x0 - x0, i.mask.x1 - x0))
        mask[sl] |= i.mask.mask
        if ga is not None:
            ga[sl] = np.maximum(ga[sl], i.ga)
    best = max(items, key=lambda i: i.score)
    return Instance(best.category_id, best.score, tight_crop(mask, y0, x0), ga)


def _boxes(items: list[Instance]) -> np.ndarray:
    return np.array([[i.mask.y0, i.mask.x0, i.mask.y1, i.mask.x1] for i in items], dtype=np.int64).reshape(-1, 4)


def _cores(intervals: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[float, float]]:
    """Per tile interval (start, end) of one axis, its core [lo, hi): the axis split at the middle of every
    overlap between consecutive intervals (the first core starts at 0, the last runs to the end)."""
    spans = sorted(set(intervals))
    cores = {}
    for k, (s, e) in enumerate(spans):
        lo = 0.0 if k == 0 else (spans[k - 1][1] + s) / 2
        hi = float("inf") if k == len(spans) - 1 else (e + spans[k + 1][0]) / 2
        cores[(s, e)] = (lo, hi)
    return cores


def keep_central(per_tile: list[tuple[tuple[int, int, int, int], list[Instance]]]) -> list[Instance]:
    """The ``central`` rule: each detection kept only by the tile whose core holds its box centre; by
    descending score. Tiles are (y0, x0, y1, x1) of a grid (``Predictor.tiles``)."""
    rows = _cores([(t[0], t[2]) for t, _ in per_tile])
    cols = _cores([(t[1], t[3]) for t, _ in per_tile])
    kept = []
    for (y0, x0, y1, x1), insts in per_tile:
        (ylo, yhi), (xlo, xhi) = rows[(y0, y1)], cols[(x0, x1)]
        for inst in insts:
            cy, cx = (inst.mask.y0 + inst.mask.y1) / 2, (inst.mask.x0 + inst.mask.x1) / 2
            if ylo <= cy < yhi and xlo <= cx < xhi:
                kept.append(inst)
    return sorted(kept, key=lambda i: -i.score)


def merge_tiles(per_tile: list[tuple[tuple[int, int, int, int], list[Instance]]]) -> list[Instance]:
    """Merge detections of overlapping tiles (see the module docstring); returns them by descending score.

    Only instances of two overlapping tiles that reach into the tiles' shared band are compared, with a
    vectorised box test first, so the work grows with the number of seams, not with instances squared.
    """
    offsets = np.cumsum([0] + [len(insts) for _, insts in per_tile])
    flat = [inst for _, insts in per_tile for inst in insts]
    boxes = [_boxes(insts) for _, insts in per_tile]
    parent = list(range(len(flat)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for ti, (ta, _) in enumerate(per_tile):
        for tj in range(ti + 1, len(per_tile)):
            tb = per_tile[tj][0]
            band = (max(ta[0], tb[0]), max(ta[1], tb[1]), min(ta[2], tb[2]), min(ta[3], tb[3]))
            if band[0] >= band[2] or band[1] >= band[3]:
                continue
            in_band = [np.flatnonzero((b[:, 0] < band[2]) & (b[:, 2] > band[0]) & (b[:, 1] < band[3])
                                      & (b[:, 3] > band[1])) for b in (boxes[ti], boxes[tj])]
            if not in_band[0].size or not in_band[1].size:
                continue
            ba, bb = boxes[ti][in_band[0]], boxes[tj][in_band[1]]
            hit = ((ba[:, None, 0] < bb[None, :, 2]) & (bb[None, :, 0] < ba[:, None, 2])
                   & (ba[:, None, 1] < bb[None, :, 3]) & (bb[None, :, 1] < ba[:, None, 3]))
            for ia, ib in zip(*np.nonzero(hit), strict=True):
                i, j = offsets[ti] + in_band[0][ia], offsets[tj] + in_band[1][ib]
                a, b = flat[i], flat[j]
                if a.category_id == b.category_id and _band_iou(a.mask, b.mask, band) > 0.5:
                    parent[find(j)] = find(i)
    groups: dict[int, list[Instance]] = {}
    for i, inst in enumerate(flat):
        groups.setdefault(find(i), []).append(inst)
    merged = [g[0] if len(g) == 1 else _union(g) for g in groups.values()]
    return sorted(merged, key=lambda i: -i.score)
