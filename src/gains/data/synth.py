"""Synthetic CTO scenes: overlapping cells, touching nuclei, crossing chromosomes.

Each generator returns a ``Sample`` (see ``canonical``) whose annotations carry ``cto``: the ids (1-based
within the image, replaced by annotation ids when written) of the instances each one overlaps,
touches or crosses. Scenes are deterministic per (seed, index): image k of a set never depends on
how many images are generated.

- ``overlap``: translucent cells with irregular smooth outlines and a nucleus each, on a bright noisy
  background; overlap darkens additively (like ISBI2014's synthetic Pap smears). Categories: 1 cell,
  2 nucleus; cells overlap, nuclei do not.
- ``touch``: clusters of bright elliptical nuclei on a dark background whose masks touch without
  overlapping (like DSB2018 fluorescence). Category 1 nucleus.
- ``cross``: dark, bent, banded rods (chromosome-like) that cross each other on a bright background;
  masks overlap at crossings. Category 1 chromosome.
- ``thin``: 4-8 long, curved, worm-like objects (width 3-8 px and length 12-35 widths at 256 px; a smooth
  random centreline) on a bright background; most cross another (masks overlap at crossings, recorded as
  ``cross``), some touch one with an end (``touch``). Category 1 worm.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from gains.data.canonical import Sample, write_dataset

KINDS = ("overlap", "touch", "cross", "thin")
CATEGORIES = {
    "overlap": [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}],
    "touch": [{"id": 1, "name": "nucleus"}],
    "cross": [{"id": 1, "name": "chromosome"}],
    "thin": [{"id": 1, "name": "worm"}],
}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size]
    return yy.astype(np.float64), xx.astype(np.float64)


def _blob(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, radius: float, rng: np.random.Generator
          ) -> np.ndarray:
    """Irregular smooth closed shape: r(phi) = R (1 + sum_k a_k cos(k phi + p_k)), k = 2..4."""
    phi = np.arctan2(yy - cy, xx - cx)
    r = np.ones_like(phi)
    for k in (2, 3, 4):
        r += rng.uniform(0.0, 0.09) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    return np.hypot(yy - cy, xx - cx) < radius * r


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float, angle: float
             ) -> np.ndarray:
    """Normalised elliptic distance (< 1 inside)."""
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return np.hypot(u / rx, v / ry)


def _relations(masks: list[np.ndarray], touch: bool) -> list[list[int]]:
    """1-based partner lists: pairs whose masks intersect, or (touch) are 4-adjacent."""
    n = len(masks)
    grown = [ndimage.binary_dilation(m, structure=ndimage.generate_binary_structure(2, 1)) for m in masks] \
        if touch else masks
    out: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if (grown[i] & masks[j]).any():
                out[i].append(j + 1)
                out[j].append(i + 1)
    return out


def _noise(rng: np.random.Generator, size: int, sigma: float, smooth: float) -> np.ndarray:
    return ndimage.gaussian_filter(rng.normal(0.0, sigma, (size, size)), smooth) * (smooth * 2.5)


def overlap_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[np.ndarray], list[int], list[dict]]:
    yy, xx = _grid(size)
    img = 0.86 + _noise(rng, size, 0.03, 2.0) + rng.normal(0, 0.015, (size, size))
    cells, nuclei, centres = [], [], []
    for _ in range(int(rng.integers(3, 7))):
        radius = size * rng.uniform(0.11, 0.18)
        if centres and rng.random() < 0.85:  # next to an existing cell so that they overlap
            py, px, pr = centres[int(rng.integers(len(centres)))]
            a = rng.uniform(0, 2 * np.pi)
            d = (pr + radius) * rng.uniform(0.45, 0.85)
            cy, cx = py + d * np.sin(a), px + d * np.cos(a)
        else:
            cy, cx = rng.uniform(0.2, 0.8, 2) * size
        lo, hi = radius * 0.6, size - radius * 0.6
        cy, cx = float(np.clip(cy, lo, hi)), float(np.clip(cx, lo, hi))
        cell = _blob(yy, xx, cy, cx, radius, rng)
        nuc = _ellipse(yy, xx, cy + rng.normal(0, radius * 0.1), cx + rng.normal(0, radius * 0.1),
                       radius * rng.uniform(0.18, 0.26), radius * rng.uniform(0.18, 0.26), rng.uniform(0, np.pi)) < 1
        nuc &= cell
        if not cell.any() or not nuc.any() or any((nuc & n).any() for n in nuclei):
            continue
        centres.append((cy, cx, radius))
        cells.append(cell)
        nuclei.append(nuc)
        img -= cell * rng.uniform(0.13, 0.2)
        img -= nuc * rng.uniform(0.25, 0.35)
    rel = _relations(cells, touch=False)
    masks = cells + nuclei
    extra = [{"cto": {"overlap": r, "touch": [], "cross": []}} for r in rel]
    extra += [{"cto": {"overlap": [], "touch": [], "cross": []}} for _ in nuclei]
    return img, masks, [1] * len(cells) + [2] * len(nuclei), extra


def touch_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[np.ndarray], list[int], list[dict]]:
    yy, xx = _grid(size)
    shapes: list[tuple[float, float, float, float, float]] = []
    for _ in range(int(rng.integers(2, 5))):
        members = [(*rng.uniform(0.15, 0.85, 2) * size, size * rng.uniform(0.035, 0.06))]
        for _ in range(int(rng.integers(3, 9))):
            py, px, pr = members[int(rng.integers(len(members)))]
            r = size * rng.uniform(0.035, 0.06)
            a = rng.uniform(0, 2 * np.pi)
            cy, cx = py + (pr + r) * 0.92 * np.sin(a), px + (pr + r) * 0.92 * np.cos(a)
            if all(np.hypot(cy - qy, cx - qx) > 0.85 * (r + qr) for qy, qx, qr in members) and \
                    r < cy < size - r and r < cx < size - r:
                members.append((cy, cx, r))
        for cy, cx, r in members:
            if all(np.hypot(cy - s[0], cx - s[1]) > 0.85 * (r + s[2]) for s in shapes):
                shapes.append((cy, cx, r, rng.uniform(0.85, 1.15), rng.uniform(0, np.pi)))
    dist = np.stack([_ellipse(yy, xx, cy, cx, r * e, r / e, a) for cy, cx, r, e, a in shapes])
    label = np.where(dist.min(axis=0) < 1.0, dist.argmin(axis=0) + 1, 0)
    masks = [label == k + 1 for k in range(len(shapes))]
    keep = [m for m in masks if m.sum() >= 12]
    img = 0.06 + np.abs(_noise(rng, size, 0.01, 3.0))
    for m in keep:
        img += ndimage.gaussian_filter(m * rng.uniform(0.45, 0.85), 1.0)
    img += rng.normal(0, 0.02, (size, size))
    rel = _relations(keep, touch=True)
    return img, keep, [1] * len(keep), [{"cto": {"overlap": [], "touch": r, "cross": []}} for r in rel]


def _tube(size: int, pts: np.ndarray, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """Mask of a thick polyline and the curve parameter t in [0, 1] of each pixel's nearest centreline point.

    Args:
        size: the (size, size) scene's side.
        pts: float (K, 2) centreline points (row, col), dense enough (<= 1 px apart) to draw a connected line.
        half_width: pixels closer than this to the centreline are inside.

    Returns:
        bool (size, size) mask and float (size, size) t (0 outside the tube's box). The distance transform runs
        on the tube's box only (the line's box grown by ``half_width`` + 1), so the work follows the object.
    """
    t = np.linspace(0.0, 1.0, len(pts))
    idx = np.clip(np.rint(pts).astype(int), 0, size - 1)
    pad = int(np.ceil(half_width)) + 1
    y0, x0 = np.maximum(idx.min(axis=0) - pad, 0)
    y1, x1 = np.minimum(idx.max(axis=0) + pad + 1, size)
    line = np.ones((y1 - y0, x1 - x0), dtype=bool)
    tmap = np.zeros(line.shape)
    line[idx[:, 0] - y0, idx[:, 1] - x0] = False
    tmap[idx[:, 0] - y0, idx[:, 1] - x0] = t
    dist, (iy, ix) = ndimage.distance_transform_edt(line, return_indices=True)
    mask, tfull = np.zeros((size, size), dtype=bool), np.zeros((size, size))
    mask[y0:y1, x0:x1] = dist < half_width
    tfull[y0:y1, x0:x1] = tmap[iy, ix]
    return mask, tfull


def _rod(size: int, p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, half_width: float
         ) -> tuple[np.ndarray, np.ndarray]:
    """Mask of a thick quadratic Bezier curve and the curve parameter t of each pixel's nearest point."""
    t = np.linspace(0.0, 1.0, 400)
    pts = ((1 - t) ** 2)[:, None] * p0 + (2 * (1 - t) * t)[:, None] * p1 + (t**2)[:, None] * p2
    return _tube(size, pts, half_width)


def cross_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[np.ndarray], list[int], list[dict]]:
    img = 0.9 + _noise(rng, size, 0.02, 3.0) + rng.normal(0, 0.015, (size, size))
    masks = []
    centre = rng.uniform(0.3, 0.7, 2) * size
    base_angle = rng.uniform(0, np.pi)
    for k in range(int(rng.integers(3, 6))):
        length = size * rng.uniform(0.3, 0.5)
        if k < 2:  # the first two cross near the same point
            mid = centre + rng.normal(0, size * 0.03, 2)
            angle = base_angle + k * rng.uniform(np.pi / 4, np.pi / 2)
        else:
            mid = rng.uniform(0.25, 0.75, 2) * size
            angle = rng.uniform(0, np.pi)
        d = np.array([np.sin(angle), np.cos(angle)]) * length / 2
        bend = np.array([-d[1], d[0]]) * rng.uniform(-0.5, 0.5)
        p0, p2 = np.clip(mid - d, 4, size - 5), np.clip(mid + d, 4, size - 5)
        mask, t = _rod(size, p0, mid + bend, p2, size * rng.uniform(0.022, 0.032))
        if mask.sum() < 30:
            continue
        bands = 0.55 + 0.25 * np.sin(2 * np.pi * t * rng.uniform(4, 8) + rng.uniform(0, 2 * np.pi))
        img *= np.where(mask, bands, 1.0)
        masks.append(mask)
    rel = _relations(masks, touch=False)
    return img, masks, [1] * len(masks), [{"cto": {"overlap": [], "touch": [], "cross": r}} for r in rel]


def _centreline(rng: np.random.Generator, length: float) -> np.ndarray:
    """A smooth random curve of arc length ``length``: float (K, 2) points (row, col) 0.5 px apart, centred on
    its box. The heading turns by a smooth random curvature (a few low cosine modes), kept within a range of
    0.8 pi so that the curve never meets itself."""
    s = np.arange(int(length * 2) + 1) * 0.5
    curvature = sum(rng.normal(0.0, 1.2) / length * np.cos(k * np.pi * s / length + rng.uniform(0, 2 * np.pi))
                    for k in range(3))
    heading = np.cumsum(curvature) * 0.5
    span = np.ptp(heading)
    if span > 0.8 * np.pi:
        heading *= 0.8 * np.pi / span
    heading += rng.uniform(0, 2 * np.pi)
    pts = np.cumsum(np.column_stack((np.sin(heading), np.cos(heading))) * 0.5, axis=0)
    return pts - (pts.min(axis=0) + pts.max(axis=0)) / 2


def _turn(pts: np.ndarray, angle: float) -> np.ndarray:
    """``pts`` (row, col) rotated by ``angle`` radians about the origin."""
    c, s = np.cos(angle), np.sin(angle)
    return pts @ np.array([[c, -s], [s, c]])


def _heading(pts: np.ndarray, k: int) -> float:
    """Direction (radians, of (row, col) = (sin, cos)) of the curve ``pts`` at point ``k``."""
    d = pts[min(k + 2, len(pts) - 1)] - pts[max(k - 2, 0)]
    return float(np.arctan2(d[0], d[1]))


def _place_thin(rng: np.random.Generator, size: int, lines: list[tuple[np.ndarray, float]]
                ) -> tuple[np.ndarray, float, int | None]:
    """Centreline (in scene coordinates), half width and touched partner of a new thin object: crossing a
    placed one (45%), its end against a placed one's side (20%; the partner's index, else None) or anywhere.
    Width 3-8 px and length 12-35 widths at 256 px scenes (both scale with ``size``); may leave the scene (the
    caller retries)."""
    unit = size / 256
    half = unit * rng.uniform(3.0, 8.0) / 2
    length = rng.uniform(max(24 * half, 0.2 * size), min(70 * half, 0.75 * size))
    pts = _centreline(rng, length)
    mode = rng.random() if lines else 1.0
    if mode < 0.65:
        partner = int(rng.integers(len(lines)))
        other, other_half = lines[partner]
        j = int(rng.integers(len(other) // 6, 5 * len(other) // 6))
        if mode < 0.45:  # cross it at 35-90 degrees, away from both ends
            k = int(rng.integers(len(pts) // 6, 5 * len(pts) // 6))
            angle = _heading(other, j) + rng.choice([-1, 1]) * rng.uniform(np.radians(35), np.pi / 2)
        else:  # touch it: the new object's end at its side, pointing away
            k = 0
            side = _heading(other, j) + rng.choice([-1, 1]) * np.pi / 2
            angle = side + rng.uniform(-0.5, 0.5)
        pts = _turn(pts, angle - _heading(pts, k))
        target = other[j]
        if mode < 0.45:
            return pts - pts[k] + target, half, None
        return pts - pts[k] + target + np.array([np.sin(side), np.cos(side)]) * (other_half + half), half, partner
    return pts + rng.uniform(0.2, 0.8, 2) * size, half, None


def thin_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[np.ndarray], list[int], list[dict]]:
    """4-8 thin objects placed by ``_place_thin`` (retried when one leaves the scene or shares over 30% of its
    pixels with another), darkening a bright background with soft edges and faint bands; crossing pairs are
    recorded as ``cross``, 4-adjacent pairs that share no pixel as ``touch``."""
    img = 0.88 + _noise(rng, size, 0.02, 3.0) + rng.normal(0, 0.015, (size, size))
    masks: list[np.ndarray] = []
    lines: list[tuple[np.ndarray, float]] = []
    for _ in range(int(rng.integers(4, 9))):
        for _attempt in range(10):
            pts, half, partner = _place_thin(rng, size, lines)
            if pts.min() < half + 1 or pts.max() > size - half - 2:
                continue
            mask, t = _tube(size, pts, half)
            area = np.count_nonzero(mask)
            if all(np.count_nonzero(mask & m) < 0.3 * min(area, np.count_nonzero(m)) for m in masks):
                break
        else:
            continue
        if partner is not None:  # an end laid against a side: the two touch, never share pixels
            pieces, n = ndimage.label(mask & ~masks[partner])
            if not n:
                continue
            mask = pieces == 1 + np.argmax(np.bincount(pieces.ravel(), minlength=n + 1)[1:])  # its largest piece
        masks.append(mask)
        lines.append((pts, half))
        body = rng.uniform(0.45, 0.7) + rng.uniform(0.0, 0.15) * np.sin(2 * np.pi * t * rng.uniform(3, 9)
                                                                           + rng.uniform(0, 2 * np.pi))
        img *= 1.0 - ndimage.gaussian_filter(np.where(mask, 1.0 - body, 0.0), 0.6)
    cross = _relations(masks, touch=False)
    near = _relations(masks, touch=True)
    touch = [sorted(set(n) - set(c)) for n, c in zip(near, cross, strict=True)]
    return img, masks, [1] * len(masks), [{"cto": {"overlap": [], "touch": tt, "cross": c}}
                                          for tt, c in zip(touch, cross, strict=True)]


SCENES: dict[str, Callable[[np.random.Generator, int], tuple]] = {
    "overlap": overlap_scene, "touch": touch_scene, "cross": cross_scene, "thin": thin_scene,
}


def make_sample(kind: str, index: int, size: int, seed: int) -> Sample:
    """Scene ``index`` of a ``kind`` set: deterministic in (kind, index, size, seed)."""
    if kind not in SCENES:
        raise ValueError(f"unknown scene kind {kind!r}; expected one of {KINDS}")
    rng = np.random.default_rng([seed, KINDS.index(kind), index])
    img, masks, cats, extra = SCENES[kind](rng, size)
    pixels = (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)
    return Sample(f"{kind}_{index:05d}.png", pixels, masks, cats, extra)


def write_synthetic(kind: str, n: int, size: int, seed: int, out: str | Path, overwrite: bool = False) -> Path:
    """Generate ``n`` scenes of ``kind`` into a canonical dataset folder; returns its annotations.json.

    The ``cto`` partner lists are rewritten from within-image indices to annotation ids.
    """
    import json

    from gains.atomic import atomic_write

    if n < 1 or size < 32:
        raise ValueError("need n >= 1 and size >= 32")
    ann_path = write_dataset(out, (make_sample(kind, i, size, seed) for i in range(n)), CATEGORIES[kind],
                             info={"generator": f"gains synth {kind}", "seed": seed, "size": size}, overwrite=overwrite)
    doc = json.loads(ann_path.read_text())
    first: dict[int, int] = {}
    for ann in doc["annotations"]:
        first.setdefault(ann["image_id"], ann["id"])
    for ann in doc["annotations"]:
        base = first[ann["image_id"]] - 1
        ann["cto"] = {k: [base + j for j in v] for k, v in ann["cto"].items()}
    atomic_write(ann_path, lambda fh: fh.write(json.dumps(doc).encode()))
    return ann_path
