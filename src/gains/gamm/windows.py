"""Sliding-window statistics as box filters over moments, with an exact fallback.

All windows are ``ws x ws``, stride 1, no padding: an input of shape (h, w) gives statistics on the
anchor grid (h - ws + 1, w - ws + 1), anchor = the window's top-left pixel. Standard deviations are
population ones (``np.std``, ddof 0). The fast path computes ``sqrt(E[x^2] - E[x]^2)``; where that
variance is below ``EXACT_BELOW`` (cancellation makes it imprecise there) the statistic is recomputed
with a two-pass formula on the gathered windows, so results match ``np.std`` to ~1e-12.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

EXACT_BELOW = 1e-6


def box_sums(x: np.ndarray, ws: int) -> np.ndarray:
    """Sum of every ws x ws window over the last two axes: (..., h, w) -> (..., h-ws+1, w-ws+1).

    Uses 2*(ws-1) shifted additions (no running sums), so rounding stays at a few ulps.
    """
    h = x.shape[-2] - ws + 1
    w = x.shape[-1] - ws + 1
    rows = x[..., 0:h, :].copy()
    for d in range(1, ws):
        rows += x[..., d : d + h, :]
    out = rows[..., :, 0:w].copy()
    for d in range(1, ws):
        out += rows[..., :, d : d + w]
    return out


def std_from_moments(s1: np.ndarray, s2: np.ndarray, n: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Population std from window sums ``s1`` = sum x, ``s2`` = sum x^2 over ``n`` values.

    Returns:
        (std, var) arrays; ``var`` is clamped at 0 and is what callers test against EXACT_BELOW.
        Anchors with n == 0 give NaN (the std of nothing).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = s2 / n - mean * mean
    np.maximum(var, 0.0, out=var)
    return np.sqrt(var), var


def exact_std(
    parts: Sequence[tuple[np.ndarray, np.ndarray | None]],
    rows: np.ndarray,
    cols: np.ndarray,
    ws: int,
) -> np.ndarray:
    """Two-pass population std at selected anchors over the union of several masked fields.

    Args:
        parts: (values, mask) pairs, each (h, w) on the same grid; mask None = every pixel counts.
            The statistic at an anchor is the std of the concatenation of every part's masked
            window values (the reference's ``np.concatenate`` of masked windows).
        rows, cols: anchor indices (m,) into the (h-ws+1, w-ws+1) anchor grid.
        ws: window size.

    Returns:
        (m,) float64 standard deviations.
    """
    vals, weights = [], []
    for values, mask in parts:
        v = sliding_window_view(values, (ws, ws))[rows, cols].reshape(rows.size, -1)
        vals.append(v)
        if mask is None:
            weights.append(np.ones_like(v))
        else:
            weights.append(sliding_window_view(mask, (ws, ws))[rows, cols].reshape(rows.size, -1).astype(float))
    v = np.concatenate(vals, axis=1)
    w = np.concatenate(weights, axis=1)
    n = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (v * w).sum(axis=1) / n
        dev = (v - mean[:, None]) * w
        return np.sqrt((dev * dev).sum(axis=1) / n)


def refine_small(
    std: np.ndarray,
    var: np.ndarray,
    valid: np.ndarray,
    parts: Sequence[tuple[np.ndarray, np.ndarray | None]],
    ws: int,
) -> np.ndarray:
    """Replace, in place, the fast-path std where ``valid`` and ``var < EXACT_BELOW`` by ``exact_std``."""
    rows, cols = np.nonzero(valid & (var < EXACT_BELOW))
    if rows.size:
        std[rows, cols] = exact_std(parts, rows, cols, ws)
    return std
