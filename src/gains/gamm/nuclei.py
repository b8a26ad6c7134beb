"""The nuclei script's variant: one annotation at a time, with its bbox-interacting neighbours.

Reference behaviour (spec 1.7): COCO bboxes expanded by ``ws`` on all sides "interact" iff they
intersect (touching counts) and neither contains the other. An annotation with no neighbour gets an
all-zero map; otherwise its group (self first) yields intra = min(d1, d2) and inter = mean_k e1_k,
each only at anchors inside the group's bbox sliding range (inter rows/cols start ws - 1 earlier),
``x = max(B - A_self, 0)`` (no overlap highlight ever), influence and normalisation as elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gains.gamm.fields import Geometry
from gains.gamm.gamap import GaMap
from gains.gamm.kernels import FACTORS, WindowStats, inter_statistic, normalise, paint, window_stats
from gains.gamm.params import GammParams


def interaction_groups(bboxes: list[tuple[float, float, float, float]], ws: int) -> list[list[int]]:
    """Neighbours (indices, input order, self excluded) of each box under the reference's rule."""
    b = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    x0, y0 = b[:, 0] - ws, b[:, 1] - ws
    x1, y1 = b[:, 0] + b[:, 2] + ws, b[:, 1] + b[:, 3] + ws
    inter = ((x0[:, None] <= x1[None, :]) & (x0[None, :] <= x1[:, None])
             & (y0[:, None] <= y1[None, :]) & (y0[None, :] <= y1[:, None]))
    # contains[i, j]: box i contains box j (closed boxes with positive area)
    contains = ((x0[:, None] <= x0[None, :]) & (x1[None, :] <= x1[:, None])
                & (y0[:, None] <= y0[None, :]) & (y1[None, :] <= y1[:, None]))
    interact = inter & ~contains & ~contains.T
    np.fill_diagonal(interact, False)
    return [np.flatnonzero(row).tolist() for row in interact]


def _range_mask(geo: Geometry, lo_r: int, hi_r: int, lo_c: int, hi_c: int) -> np.ndarray:
    """Bool mask over geo's anchor grid: full-image anchors with rows in [lo_r, hi_r), cols in [lo_c, hi_c)."""
    nr, nc = geo.count.shape
    rows = np.arange(geo.fy0, geo.fy0 + nr)
    cols = np.arange(geo.fx0, geo.fx0 + nc)
    return ((rows >= lo_r) & (rows < hi_r))[:, None] & ((cols >= lo_c) & (cols < hi_c))[None, :]


def nuclei_maps(
    bboxes: Sequence[tuple[float, float, float, float]], geos: list[Geometry], height: int, width: int,
    params: GammParams,
) -> list[GaMap]:
    """Raw GA maps of one image under the nuclei script's semantics (see module docstring)."""
    ws, offset = params.window_size, (params.window_size // 2 if params.anchor == "center" else 0)
    groups = interaction_groups(list(bboxes), ws)
    out: list[GaMap] = []
    stats_cache: dict[tuple[int, int], WindowStats] = {}
    for i, neighbours in enumerate(groups):
        if not neighbours:
            out.append(GaMap(height, width, fill=0.0))
            continue
        if geos[i].category_id != params.target_category:
            out.append(GaMap(height, width))
            continue
        others = [k for k in neighbours if geos[k].category_id == params.target_category]
        if not others:
            out.append(GaMap(height, width, fill=np.nan))
            continue
        box = np.asarray([bboxes[j] for j in [i, *neighbours]], dtype=np.float64)
        sx0, sy0 = int(box[:, 0].min()), int(box[:, 1].min())
        sw = int((box[:, 0] + box[:, 2]).max() - box[:, 0].min())
        sh = int((box[:, 1] + box[:, 3]).max() - box[:, 1].min())
        intra_rng = _range_mask(geos[i], max(0, sy0), min(height - ws + 1, sy0 + sh),
                                max(0, sx0), min(width - ws + 1, sx0 + sw))
        inter_rng = _range_mask(geos[i], max(0, sy0 - ws + 1), min(height - ws + 1, sy0 + sh),
                                max(0, sx0 - ws + 1), min(width - ws + 1, sx0 + sw))
        acc = None
        for factor in FACTORS:
            ths = {k: geos[k].direction(factor) for k in [i, *others]}
            stats = {}
            for k in [i, *others]:
                if (k, factor) not in stats_cache:
                    stats_cache[(k, factor)] = window_stats(geos[k], ths[k], ws)
                stats[k] = stats_cache[(k, factor)]
            s = stats[i]
            intra = np.where(s.touch & intra_rng, np.minimum(s.d1, s.d2), 0.0)
            inter = inter_statistic(i, others, geos, ths, stats, s.d1, False, ws)
            inter = np.where(inter_rng, inter, 0.0)
            y0, x0, pb = paint(inter, geos[i], height, width, ws, offset)
            pa = paint(intra, geos[i], height, width, ws, offset)[2]
            x = np.maximum(pb - pa, 0.0)
            normalise(x, geos[i], y0, x0, params.ga_factor)
            acc = x if acc is None else (acc + x) / 2
        out.append(GaMap(height, width, y0, x0, acc))
    return out
