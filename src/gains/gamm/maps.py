"""GA maps of one image: the three published GAMM scripts, vectorised on instance frames.

Reference semantics (spec section 1): per factor f in (+1, -1), per target instance i, the intra
statistic A_i and the inter statistic B_i are computed at every window anchor that touches M_i,
painted into the image (each pixel takes the value of the window anchored at it, clamped at the
bottom/right border), combined as ``x = B_w - A_0 - ... - A_{N-1}`` with clamps and overlap
highlights, weighted by the distance to the centroid, normalised to [1, 1 + ga_factor]; the two
passes are averaged. Everything happens on instance frames; pixels no instance reaches stay 1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gains.core.masks import MaskCrop, mask_overlap
from gains.gamm.fields import Geometry, build_geometry
from gains.gamm.gamap import GaMap
from gains.gamm.kernels import (
    FACTORS,
    inter_statistic,
    normalise,
    paint,
    region_slices,
    window_stats,
)
from gains.gamm.nuclei import nuclei_maps
from gains.gamm.params import GammParams


@dataclass(frozen=True)
class InstanceInput:
    """One annotation as GAMM needs it: category, mask and the JSON's xywh bbox (nuclei pre-filter)."""

    ann_id: int
    category_id: int
    crop: MaskCrop
    bbox: tuple[float, float, float, float]


def image_maps(instances: list[InstanceInput], height: int, width: int, params: GammParams) -> list[GaMap]:
    """Raw (reference) GA maps of every annotation of one image, in input order.

    Args:
        instances: the image's annotations in JSON order, masks non-empty.
        height, width: image size; both must be >= window_size.
        params: variant and hyper-parameters.

    Returns:
        One GaMap per instance (NaN and all-zero maps as the reference makes them). With
        ``params.every_category`` each category's instances take their maps from a pass with that category as
        the target (the other instances present, as in any pass).
    """
    if params.every_category:
        passes = {c: image_maps(instances, height, width, replace(params, target_category=c, every_category=False))
                  for c in {inst.category_id for inst in instances}}
        return [passes[inst.category_id][j] for j, inst in enumerate(instances)]
    ws = params.window_size
    if params.target_category is None:
        raise ValueError("params.target_category must be set (see GammParams)")
    if height < ws or width < ws:
        raise ValueError(f"image {height}x{width} is smaller than the {ws}x{ws} window")
    geos = [build_geometry(i, inst.category_id, inst.crop, height, width, ws) for i, inst in enumerate(instances)]
    if params.variant == "nuclei":
        return nuclei_maps([inst.bbox for inst in instances], geos, height, width, params)
    return _image_maps_whole(geos, height, width, params)


def _image_maps_whole(geos: list[Geometry], height: int, width: int, params: GammParams) -> list[GaMap]:
    """isbi / chrom: all instances of the image processed together."""
    ws, offset = params.window_size, (params.window_size // 2 if params.anchor == "center" else 0)
    targets = [g.index for g in geos if g.category_id == params.target_category]
    if len(targets) == 1:  # np.mean([]) of the lone target poisons every map of the image
        return [GaMap(height, width, fill=np.nan) for _ in geos]
    overlaps = {(w, k): mask_overlap(geos[w].crop, geos[k].crop) for w in targets for k in targets if k != w}
    acc: dict[int, np.ndarray] = {}
    for factor in FACTORS:
        ths = {t: geos[t].direction(factor) for t in targets}
        stats = {t: window_stats(geos[t], ths[t], ws) for t in targets}
        painted_a, painted_b = {}, {}
        for t in targets:
            s = stats[t]
            both = np.minimum(s.d1, s.d2)
            intra = np.where(s.touch, s.d1 if params.variant == "chrom" else both, 0.0)
            inter = inter_statistic(t, [k for k in targets if k != t], geos, ths, stats, both, True, ws)
            painted_a[t] = paint(intra, geos[t], height, width, ws, offset)
            painted_b[t] = paint(inter, geos[t], height, width, ws, offset)
        for w in targets:
            y0, x0, x = painted_b[w]
            x = x.copy()
            for k in range(len(geos)):
                if k in painted_a:
                    ky0, kx0, pa = painted_a[k]
                    sl = region_slices(ky0, kx0, pa.shape, y0, x0, x.shape)
                    if sl is not None:
                        xs = x[sl[0]]
                        xs -= pa[sl[1]]
                        np.maximum(xs, 0.0, out=xs)
                ov = overlaps.get((w, k))
                if ov is not None:
                    sl = region_slices(ov[0], ov[1], ov[2].shape, y0, x0, x.shape)
                    x[sl[0]][ov[2][sl[1]]] += params.overlap_hl
            normalise(x, geos[w], y0, x0, params.ga_factor)
            acc[w] = (y0, x0, x if w not in acc else (acc[w][2] + x) / 2)
    out = []
    for g in geos:
        if g.index in acc:
            y0, x0, x = acc[g.index]
            out.append(GaMap(height, width, y0, x0, x))
        else:
            out.append(GaMap(height, width))
    return out
