"""Window statistics, painting and normalisation shared by the GAMM variants.

Anchor grids: an instance's statistics live on the grid of windows that can touch it (see
``fields``); index (a, b) of that grid is the full-image anchor (fy0 + a, fx0 + b).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gains.gamm.fields import Geometry
from gains.gamm.windows import box_sums, refine_small, std_from_moments

FACTORS = (1, -1)


@dataclass
class WindowStats:
    """Window statistics of one target instance for one factor, on its anchor grid."""

    touch: np.ndarray  # bool: window holds a mask pixel
    d1: np.ndarray  # std over all window pixels (sentinels included)
    d2: np.ndarray  # std over mask pixels only
    s1m: np.ndarray  # sum of theta over mask pixels
    s2m: np.ndarray  # sum of theta^2 over mask pixels


def window_stats(geo: Geometry, th: np.ndarray, ws: int) -> WindowStats:
    m = geo.mask
    thm = np.where(m, th, 0.0)
    s = box_sums(np.stack([th, th * th, thm, thm * thm]), ws)
    touch = geo.count > 0
    d1, v1 = std_from_moments(s[0], s[1], float(ws * ws))
    refine_small(d1, v1, touch, [(th, None)], ws)
    with np.errstate(invalid="ignore", divide="ignore"):
        d2, v2 = std_from_moments(s[2], s[3], geo.count)
    refine_small(d2, v2, geo.count > 1, [(th, m)], ws)  # one value: the moments give exactly 0
    return WindowStats(touch, d1, d2, s[2], s[3])


def shared_anchors(a: Geometry, b: Geometry, ws: int) -> tuple[slice, slice, slice, slice] | None:
    """Anchor-grid slices (rows_a, cols_a, rows_b, cols_b) of the anchors both instances' grids hold."""
    na, nb = a.count.shape, b.count.shape
    r0, r1 = max(a.fy0, b.fy0), min(a.fy0 + na[0], b.fy0 + nb[0])
    c0, c1 = max(a.fx0, b.fx0), min(a.fx0 + na[1], b.fx0 + nb[1])
    if r0 >= r1 or c0 >= c1:
        return None
    return (slice(r0 - a.fy0, r1 - a.fy0), slice(c0 - a.fx0, c1 - a.fx0),
            slice(r0 - b.fy0, r1 - b.fy0), slice(c0 - b.fx0, c1 - b.fx0))


def anchor_frame(sl_r: slice, sl_c: slice, ws: int) -> tuple[slice, slice]:
    """Pixel slices of the frame covered by the windows anchored in (sl_r, sl_c)."""
    return slice(sl_r.start, sl_r.stop + ws - 1), slice(sl_c.start, sl_c.stop + ws - 1)


def inter_statistic(
    i: int, others: list[int], geos: list[Geometry], ths: dict[int, np.ndarray],
    stats: dict[int, WindowStats], absent: np.ndarray, use_e2: bool, ws: int,
) -> np.ndarray:
    """B_i: mean over the other target instances k of their window statistic against i.

    Where k has no pixel in the window the statistic equals ``absent`` (d1 for e1, min(d1, d2) for
    min(e1, e2)), so only anchors shared with k are computed.
    """
    gi, si = geos[i], stats[i]
    total = absent * len(others)
    for k in others:
        gk, sk = geos[k], stats[k]
        sh = shared_anchors(gi, gk, ws)
        if sh is None:
            continue
        ri, ci, rk, ck = sh
        present = si.touch[ri, ci] & (gk.count[rk, ck] > 0)
        if not present.any():
            continue
        fi, fk = anchor_frame(ri, ci, ws), anchor_frame(rk, ck, ws)
        th_i, th_k = ths[i][fi], ths[k][fk]
        delta = th_k - th_i
        s = box_sums(np.stack([delta, delta * delta]), ws)
        e, v = std_from_moments(s[0], s[1], float(ws * ws))
        refine_small(e, v, present, [(delta, None)], ws)
        if use_e2:
            n = gi.count[ri, ci] + gk.count[rk, ck]
            e2, v2 = std_from_moments(si.s1m[ri, ci] + sk.s1m[rk, ck], si.s2m[ri, ci] + sk.s2m[rk, ck], n)
            refine_small(e2, v2, present & (n > 1), [(th_i, gi.mask[fi]), (th_k, gk.mask[fk])], ws)
            np.minimum(e, e2, out=e)
        sub = total[ri, ci]
        sub[present] += e[present] - absent[ri, ci][present]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(si.touch, total / len(others), 0.0) if others else np.where(si.touch, np.nan, 0.0)


def paint(d: np.ndarray, geo: Geometry, height: int, width: int, ws: int, offset: int
           ) -> tuple[int, int, np.ndarray]:
    """Paint anchor statistics into pixels: pixel p takes D[clip(p - offset, 0, size - ws)].

    offset 0 is the reference's raster-order overwrite (top-left anchoring); ws // 2 centres it.
    Returns (y0, x0, crop) of the pixel region where the painted map can be non-zero.
    """
    out = []
    for axis, (a0, size) in enumerate(((geo.fy0, height), (geo.fx0, width))):
        n = d.shape[axis]
        lo = 0 if a0 == 0 else a0 + offset
        hi = size if a0 + n - 1 == size - ws else a0 + n + offset
        idx = np.minimum(np.maximum(np.arange(lo - offset, hi - offset), 0), size - ws) - a0
        out.append((lo, idx))
    (y0, ri), (x0, ci) = out
    return y0, x0, d.take(ri, axis=0).take(ci, axis=1)


def region_slices(y0: int, x0: int, shape: tuple[int, int], ry0: int, rx0: int, rshape: tuple[int, int]
                   ) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Slices into a region (ry0, rx0, rshape) and into a patch (y0, x0, shape) of their overlap."""
    r0, r1 = max(y0, ry0), min(y0 + shape[0], ry0 + rshape[0])
    c0, c1 = max(x0, rx0), min(x0 + shape[1], rx0 + rshape[1])
    if r0 >= r1 or c0 >= c1:
        return None
    return ((slice(r0 - ry0, r1 - ry0), slice(c0 - rx0, c1 - rx0)),
            (slice(r0 - y0, r1 - y0), slice(c0 - x0, c1 - x0)))


def normalise(x: np.ndarray, geo: Geometry, y0: int, x0: int, ga: float) -> np.ndarray:
    """Influence (distance to centroid / its image maximum) then scale to [1, 1 + ga], in place."""
    fy, fx = y0 - geo.fy0, x0 - geo.fx0
    g = geo.g[fy : fy + x.shape[0], fx : fx + x.shape[1]]
    x *= g / geo.gmax
    x /= np.max(x) + 1e-7
    x *= ga
    x += 1
    return x
