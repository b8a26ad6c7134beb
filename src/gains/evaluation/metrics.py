"""Instance-segmentation metrics of one image and one category, from overlap matrices (numpy only).

Inputs (per image, per category): ``inter`` [D, G] pixel counts |d ∩ g| of predictions (rows, in the
order the caller chose: by descending score) and ground truths (columns, file order), and the areas
``area_d`` [D], ``area_g`` [G]. IoU = inter / (area_d + area_g - inter). Each metric returns a number in
[0, 1]; an image with ground truth but no prediction (or the reverse) scores 0.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

DSB_THRESHOLDS = tuple(np.round(np.arange(0.5, 1.0, 0.05), 2))


def iou_matrix(inter: np.ndarray, area_d: np.ndarray, area_g: np.ndarray) -> np.ndarray:
    """[D, G] IoU from intersections and areas (0 where the union is empty)."""
    union = area_d[:, None] + area_g[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def _empty_side(d: int, g: int) -> float | None:
    return 0.0 if (d == 0) != (g == 0) else (np.nan if d == g == 0 else None)


def aji_gains(inter: np.ndarray, area_d: np.ndarray, area_g: np.ndarray) -> float:
    """The AJI of the GAInS/DoNet papers, without the reference's bugs (spec 4.2).

    Ground truths in order; each takes the still-unmatched prediction of highest IoU if that IoU >= 0.5
    (the first such prediction on ties); matched intersections over matched unions plus the areas of
    every unmatched ground truth and prediction.
    """
    d, g = inter.shape
    early = _empty_side(d, g)
    if early is not None:
        return early
    iou = iou_matrix(inter, area_d, area_g)
    used = np.zeros(d, dtype=bool)
    matched_g = np.zeros(g, dtype=bool)
    num = den = 0.0
    for j in range(g):
        cand = np.where(used, -1.0, iou[:, j])
        k = int(np.argmax(cand))
        if cand[k] >= 0.5:
            used[k] = matched_g[j] = True
            num += inter[k, j]
            den += area_d[k] + area_g[j] - inter[k, j]
    den += area_g[~matched_g].sum() + area_d[~used].sum()
    return float(num / den) if den > 0 else 0.0


def aji_kumar(inter: np.ndarray, area_d: np.ndarray, area_g: np.ndarray) -> float:
    """Aggregated Jaccard Index (Kumar et al. 2017): each ground truth with its maximum-IoU prediction
    when that IoU > 0 (a prediction may serve several); unpaired ground truths and never-used
    predictions added to the union."""
    d, g = inter.shape
    early = _empty_side(d, g)
    if early is not None:
        return early
    iou = iou_matrix(inter, area_d, area_g)
    best = np.argmax(iou, axis=0)
    paired = iou[best, np.arange(g)] > 0
    num = inter[best[paired], np.flatnonzero(paired)].sum()
    den = (area_d[best[paired]] + area_g[paired] - inter[best[paired], np.flatnonzero(paired)]).sum()
    den += area_g[~paired].sum()
    used = np.zeros(d, dtype=bool)
    used[best[paired]] = True
    den += area_d[~used].sum()
    return float(num / den) if den > 0 else 0.0


def aji_plus(inter: np.ndarray, area_d: np.ndarray, area_g: np.ndarray) -> float:
    """AJI+: one-to-one assignment maximising the total IoU (Hungarian); pairs with IoU > 0 kept, every
    other ground truth and prediction added to the union."""
    d, g = inter.shape
    early = _empty_side(d, g)
    if early is not None:
        return early
    iou = iou_matrix(inter, area_d, area_g)
    rows, cols = linear_sum_assignment(-iou)
    keep = iou[rows, cols] > 0
    rows, cols = rows[keep], cols[keep]
    num = inter[rows, cols].sum()
    den = (area_d[rows] + area_g[cols] - inter[rows, cols]).sum()
    used_d = np.zeros(d, dtype=bool)
    used_d[rows] = True
    used_g = np.zeros(g, dtype=bool)
    used_g[cols] = True
    den += area_d[~used_d].sum() + area_g[~used_g].sum()
    return float(num / den) if den > 0 else 0.0


def greedy_matches(iou: np.ndarray, thresh: float) -> list[tuple[int, int]]:
    """One-to-one pairs (d, g) taken greedily by descending IoU among pairs with IoU > ``thresh``."""
    cand = np.argwhere(iou > thresh)
    if cand.size == 0:
        return []
    order = np.argsort(-iou[cand[:, 0], cand[:, 1]], kind="stable")
    used_d, used_g, out = set(), set(), []
    for k in order:
        i, j = (int(v) for v in cand[k])
        if i not in used_d and j not in used_g:
            used_d.add(i)
            used_g.add(j)
            out.append((i, j))
    return out


def pq_f1(inter: np.ndarray, area_d: np.ndarray, area_g: np.ndarray) -> tuple[float, float]:
    """(PQ, F1) at IoU > 0.5: PQ = sum of matched IoU / (TP + FP/2 + FN/2), F1 = 2TP / (2TP + FP + FN)."""
    d, g = inter.shape
    early = _empty_side(d, g)
    if early is not None:
        return early, early
    iou = iou_matrix(inter, area_d, area_g)
    pairs = greedy_matches(iou, 0.5)
    tp = len(pairs)
    fp, fn = d - tp, g - tp
    sq = sum(iou[i, j] for i, j in pairs)
    pq = sq / (tp + fp / 2 + fn / 2) if tp else 0.0
    return float(pq), float(2 * tp / (2 * tp + fp + fn))


def dsb_score(inter: np.ndarray, area_d: np.ndarray, area_g: np.ndarray) -> float:
    """Kaggle DSB2018 score: mean over t in 0.50, 0.55, ..., 0.95 of TP / (TP + FP + FN) at IoU > t."""
    d, g = inter.shape
    early = _empty_side(d, g)
    if early is not None:
        return early
    iou = iou_matrix(inter, area_d, area_g)
    vals = []
    for t in DSB_THRESHOLDS:
        tp = len(greedy_matches(iou, t))
        vals.append(tp / (d + g - tp))
    return float(np.mean(vals))
