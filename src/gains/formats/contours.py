"""Instance masks as polygons that rasterise back to exactly the same pixels.

Convention (pixel edges, as Fiji and QuPath draw them): pixel (row r, column c) is the unit square
``[c, c + 1] x [r, r + 1]`` in image coordinates (x to the right, y down, origin at the image's top-left
corner). Polygons run along pixel edges, so every vertex is an integer lattice point, the polygon's area
equals the pixel count, and a pixel is inside the polygon exactly when its centre ``(c + 0.5, r + 0.5)``
is — no pixel centre ever lies on an edge, so any point-in-polygon test (even-odd or non-zero, ImageJ's
``PolygonFiller``, JTS, shapely) gives back the mask bit for bit. This is not the convention of
:mod:`gains.core.masks`, which reads COCO polygons with pixel centres at integer coordinates.

Tracing is contourpy's marching squares (the library matplotlib draws contours with) over the zero-padded
crop at level 0.75, which keeps diagonal neighbours apart (4-connected parts). Marching squares puts each
vertex on the segment between a pixel centre inside and one outside, i.e. on the middle of the pixel edge
between them; consecutive vertices on perpendicular edges share the lattice corner between them, and
those corners are the pixel-edge polygon. Where two parts or two holes meet only at a corner, the traced
ring passes that lattice point twice; it is cut there into simple rings, so the result is valid in the
OGC simple-features sense (rings do not cross; parts and holes may touch at single points).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from contourpy import FillType, LineType, SerialContourGenerator, ZInterp

from gains.core.masks import MaskCrop

Ring = np.ndarray  # (n, 2) int64 lattice points x, y in image coordinates, n >= 4, not closed
Polygon = list[Ring]  # [exterior, *holes]

_LEVEL = 0.75  # between the mask's 0 and 1, above 0.5: a saddle (two diagonal pixels) stays two parts


def mask_polygons(crop: MaskCrop) -> list[Polygon]:
    """The pixel-edge polygons of a mask crop, one per 4-connected part, largest first.

    Args:
        crop: a tight bool mask crop (see :class:`gains.core.masks.MaskCrop`).

    Returns:
        Polygons ``[exterior, *holes]``, each ring an (n, 2) int64 array of x, y image coordinates
        (pixel edges, see the module docstring), not repeating its first point. Exteriors have positive
        signed (shoelace) area in x, y — counter-clockwise with the y axis pointing up, as GeoJSON's
        right-hand rule asks, which looks clockwise on screen where y points down — and holes negative.

    Raises:
        ValueError: the mask is not a 2-D bool array with at least one pixel set.
    """
    mask = np.asarray(crop.mask)
    if mask.ndim != 2 or mask.dtype != bool:
        raise ValueError(f"mask must be a 2-D bool array, got {mask.dtype} with shape {mask.shape}")
    if not mask.any():
        raise ValueError("mask is empty")
    points, offsets = _trace(mask)
    origin = np.array([crop.x0 - 1, crop.y0 - 1], dtype=np.int64)  # padding shifts the crop by one pixel
    exterior_sign = 0
    loops: list[Ring] = []
    for pts, offs in zip(points, offsets, strict=True):
        for k, (a, b) in enumerate(pairwise(offs)):
            corners = _corners(pts[a : b - 1])  # contourpy closes each ring by repeating its first point
            if k == 0 and not exterior_sign:
                exterior_sign = int(np.sign(_area2(corners)))  # contourpy's orientation of exteriors
            loops += _split_pinches(corners + origin)
    signed = [(ring, _area2(ring) * exterior_sign) for ring in loops]
    shells = sorted((r for r, a in signed if a > 0), key=lambda r: -abs(_area2(r)))
    holes = [r for r, a in signed if a < 0]
    polygons: list[Polygon] = [[_oriented(s, 1)] for s in shells]
    for hole in holes:
        polygons[_owner(hole, shells)].append(_oriented(hole, -1))
    return polygons


def _trace(mask: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """contourpy's filled contours of the zero-padded mask: per outer boundary, its points (pixel-centre
    coordinates of the padded grid) and the offsets where its rings (outer first, then holes) start.

    The generator class is built directly: ``contourpy.contour_generator`` costs about four times as much
    in argument checks, which dominates for the small crops of typical instances.
    """
    z = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2))
    z[1:-1, 1:-1] = mask
    y, x = np.indices(z.shape, dtype=np.float64)
    gen = SerialContourGenerator(x, y, z, None, corner_mask=False, line_type=LineType.Separate,
                                 fill_type=FillType.OuterOffset, quad_as_tri=False, z_interp=ZInterp.Linear,
                                 x_chunk_size=0, y_chunk_size=0)
    return gen.filled(_LEVEL, 2.0)


def polygon_area(polygon: Polygon) -> int:
    """Area of one polygon (exterior less holes) in pixels."""
    return sum(_area2(ring) for ring in polygon) // 2


def _corners(pts: np.ndarray) -> Ring:
    """Lattice corners of a marching-squares ring on a binary grid (pixel-centre coordinates in, edges out).

    A vertex with integral x lies between two vertically adjacent pixel centres, on the horizontal pixel
    edge ``y = floor(y) + 1``; one with integral y lies on the vertical edge ``x = floor(x) + 1``. Where
    the ring turns from one kind to the other, the corner of the two edges is a polygon vertex.
    """
    on_horizontal = pts[:, 0] == np.floor(pts[:, 0])
    ex = np.floor(pts[:, 0]).astype(np.int64) + 1
    ey = np.floor(pts[:, 1]).astype(np.int64) + 1
    nxt = np.arange(1, len(pts) + 1)
    nxt[-1] = 0
    turn = on_horizontal != on_horizontal[nxt]
    cx = np.where(on_horizontal, ex[nxt], ex)[turn]
    cy = np.where(on_horizontal, ey, ey[nxt])[turn]
    return np.column_stack((cx, cy))


def _split_pinches(ring: Ring) -> list[Ring]:
    """Cut a ring that passes a lattice point more than once into rings that pass each point once."""
    key = (ring[:, 0] - ring[:, 0].min()) * (int(np.ptp(ring[:, 1])) + 1) + (ring[:, 1] - ring[:, 1].min())
    key.sort()
    if not (key[1:] == key[:-1]).any():
        return [ring]
    out: list[Ring] = []
    stack: list[tuple[int, int]] = []
    seen: dict[tuple[int, int], int] = {}
    for p in map(tuple, ring.tolist()):
        if p in seen:
            j = seen[p]
            out.append(np.array(stack[j:], dtype=np.int64))
            for q in stack[j + 1 :]:
                del seen[q]
            del stack[j + 1 :]
        else:
            seen[p] = len(stack)
            stack.append(p)
    out.append(np.array(stack, dtype=np.int64))
    return out


def _area2(ring: Ring) -> int:
    """Twice the signed shoelace area of a closed ring (exact in integers)."""
    x, y = ring[:, 0], ring[:, 1]
    return int(np.dot(x[:-1], y[1:]) - np.dot(y[:-1], x[1:]) + x[-1] * y[0] - y[-1] * x[0])


def _oriented(ring: Ring, sign: int) -> Ring:
    return ring if np.sign(_area2(ring)) == sign else ring[::-1].copy()


def _owner(hole: Ring, shells: list[Ring]) -> int:
    """Index of the smallest shell around a hole, tested at the middle of the hole's first edge.

    The middle of a hole's edge is never on a shell (every pixel edge of the boundary is traced once, and
    the rings only meet at lattice points), so the test is exact.
    """
    from matplotlib.path import Path  # matplotlib costs a tenth of a second to import: only where a hole is

    probe = (hole[0] + hole[1]) / 2.0
    lo, hi = hole.min(axis=0), hole.max(axis=0)
    for k in range(len(shells) - 1, -1, -1):  # smallest first: shells are sorted by decreasing area
        s = shells[k]
        if (s.min(axis=0) > lo).any() or (s.max(axis=0) < hi).any():
            continue
        if Path(np.vstack((s, s[:1])), closed=True).contains_point(probe):
            return k
    raise AssertionError("a traced hole lies inside no traced exterior")  # pragma: no cover
