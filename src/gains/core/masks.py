"""Instance masks for GAMM, rasterised exactly as the reference scripts do.

Convention: pixel (row r, col c) is inside a polygon iff the point (x=c, y=r) — integer pixel
coordinates, no +0.5 centre offset — is inside it per ``matplotlib.path.Path.contains_points``
(spec 1.2). A multi-polygon instance is the union of its parts. RLE segmentations (compressed or
not) are decoded with pycocotools. Masks are returned as tight crops to keep work on bounding boxes.

The reference tests every pixel of the image against every edge (matplotlib's crossing test). Here
each polygon is scan-converted over its bounding box instead: per row, the crossings of the edges
with the row give the inside parity of every pixel at once, and where a crossing lies within a
rounding tolerance of a pixel, that edge's decision for that pixel is made with matplotlib's own
floating-point expression. ``_polygon_inside`` says why the pixels are the reference's; the tests
compare them with matplotlib.path over whole images. No matplotlib import is needed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gains.core.checks import check_segmentation


@dataclass(frozen=True)
class MaskCrop:
    """A binary instance mask stored as its tight bounding-box crop.

    Attributes:
        y0, x0: full-image row/column of ``mask[0, 0]``.
        mask: bool array (h, w); every row and column holds at least one True pixel.
    """

    y0: int
    x0: int
    mask: np.ndarray

    @property
    def y1(self) -> int:
        """One past the last row (exclusive)."""
        return self.y0 + self.mask.shape[0]

    @property
    def x1(self) -> int:
        """One past the last column (exclusive)."""
        return self.x0 + self.mask.shape[1]

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    def to_dense(self, height: int, width: int) -> np.ndarray:
        """The full-size bool mask (height, width)."""
        out = np.zeros((height, width), dtype=bool)
        out[self.y0 : self.y1, self.x0 : self.x1] = self.mask
        return out


@dataclass
class Instance:
    """One object, as the predictor makes it and the writers (``gains.formats``) take it.

    Attributes:
        category_id: COCO category id.
        score: the model's score in [0, 1] (ground truth read back for display: 1.0).
        mask: the object's tight crop in image coordinates.
        ga: None, or the predicted GA map over ``mask``'s crop box (float32, same shape, 1 = no anomaly).
    """

    category_id: int
    score: float
    mask: MaskCrop
    ga: np.ndarray | None = None

    @property
    def box(self) -> tuple[int, int, int, int]:
        """xyxy, pixel edges."""
        return self.mask.x0, self.mask.y0, self.mask.x1, self.mask.y1


def _nearest(start: int, length: int, factor: float, limit: int) -> tuple[int, np.ndarray]:
    """Of pixels ``start .. start + length`` on a grid ``factor`` times coarser: the first pixel of the fine grid
    they cover (below ``limit``) and, per fine pixel from there, the coarse index (0-based in the run) it takes."""
    first, last = int(np.floor(start * factor)), min(int(np.ceil((start + length) * factor)), limit)
    index = np.clip((np.arange(first, last) + 0.5) / factor, start, start + length - 1e-9).astype(np.int64) - start
    return first, index


def upscale(instance: Instance, factor: float, height: int, width: int) -> Instance | None:
    """``instance`` found on an image ``factor`` times smaller (a pyramid level), on the (height, width) image:
    mask and GA map resampled to the nearest level pixel at each image pixel's centre; None if nothing is left."""
    m = instance.mask
    y0, rows = _nearest(m.y0, m.mask.shape[0], factor, height)
    x0, cols = _nearest(m.x0, m.mask.shape[1], factor, width)
    crop = tight_crop(m.mask[np.ix_(rows, cols)], y0, x0)
    if crop is None:
        return None
    ga = None
    if instance.ga is not None:
        ga = instance.ga[np.ix_(rows, cols)][crop.y0 - y0 : crop.y1 - y0, crop.x0 - x0 : crop.x1 - x0]
    return Instance(instance.category_id, instance.score, crop, None if ga is None else np.ascontiguousarray(ga))


def tight_crop(mask: np.ndarray, y0: int = 0, x0: int = 0) -> MaskCrop | None:
    """Shrink a bool mask (placed at ``y0, x0``) to its bounding box; None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return MaskCrop(y0 + int(r0), x0 + int(c0), np.ascontiguousarray(mask[r0:r1, c0:c1]))


def _polygon_points(poly: Any) -> np.ndarray:
    pts = np.asarray(poly, dtype=np.float64)
    if pts.ndim != 1 or pts.size % 2 or pts.size < 6:
        raise ValueError(f"polygon needs an even number (>= 6) of coordinates, got {pts.size}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("polygon has non-finite coordinates")
    pts = pts.reshape(-1, 2)
    x, y = pts[:, 0], pts[:, 1]
    area2 = np.dot(x, np.concatenate((y[1:], y[:1]))) - np.dot(y, np.concatenate((x[1:], x[:1])))  # = np.roll(., -1)
    if abs(area2) == 0.0:
        raise ValueError("degenerate polygon (zero area)")
    return pts


# Crossings closer than this (times the coordinate scale) to a pixel get matplotlib's exact test: about
# 1e4 times the rounding error of either side, and below 0.1 pixel up to the largest coordinate accepted.
_TIE_TOLERANCE = 1e-11
_MAX_COORDINATE = 1e10


def _polygon_inside(pts: np.ndarray, height: int, width: int) -> tuple[int, int, np.ndarray] | None:
    """The reference rule for one polygon, over its bounding box clipped to the image.

    Args:
        pts: float64 (n, 2) vertices (x, y), finite; the path closes from the last vertex to the first.
        height, width: image size.

    Returns:
        (r0, c0, inside) with inside a bool (h, w) array whose [0, 0] is pixel (r0, c0); None when no
        pixel row or column of the image can be inside.

    Why it equals ``Path(pts).contains_points`` at every pixel: matplotlib (``point_in_path_impl``)
    toggles a point's parity for each edge (x0, y0) -> (x1, y1) with ``(y1 >= ty) != (y0 >= ty)`` (an
    exact comparison, reproduced here exactly: the edge spans the rows floor(min y) + 1 .. floor(max y))
    and ``((y1 - ty) * (x0 - x1) >= (x1 - tx) * (y0 - y1)) == (y1 >= ty)``. In exact arithmetic that
    expression says "the edge crosses the row right of tx" (x* > tx, ties aside); rounding moves its
    decision by a few units in the last place of the coordinate scale, far below the tolerance used
    here. So each edge toggles exactly the pixels left of its crossing, except possibly the one pixel
    within the tolerance of it, for which the expression itself is evaluated (IEEE float64 as in
    matplotlib's C++: each product rounded, then compared; no fused multiply-add can apply to a
    comparison). Pixels left or right of all vertices see an even number of crossings or none, so
    the bounding box loses nothing.
    """
    (xmin, ymin), (xmax, ymax) = pts.min(axis=0).tolist(), pts.max(axis=0).tolist()
    scale = max(1.0, -xmin, -ymin, xmax, ymax, float(height), float(width))
    if scale > _MAX_COORDINATE:
        raise ValueError(f"polygon coordinate {scale:.3g} is beyond {_MAX_COORDINATE:.0e} pixels")
    tol = _TIE_TOLERANCE * scale
    r0, r1 = max(math.floor(ymin) + 1, 0), min(math.floor(ymax), height - 1)
    c0, c1 = max(math.floor(xmin - tol), 0), min(math.ceil(xmax + tol), width - 1)
    if r1 < r0 or c1 < c0:
        return None
    h, w = r1 - r0 + 1, c1 - c0 + 1
    x, y = pts[:, 0], pts[:, 1]
    ex, ey = np.concatenate((x[1:], x[:1])), np.concatenate((y[1:], y[:1]))
    first = np.maximum(np.floor(np.minimum(y, ey)) + 1, r0)
    counts = np.maximum(np.minimum(np.floor(np.maximum(y, ey)), r1) - first + 1, 0).astype(np.int64)
    ends = np.cumsum(counts)
    # One (edge, row) pair per crossing: the edge's index, its start and inverse slope, the row.
    dy = ey - y
    slope = np.divide(ex - x, dy, out=np.zeros_like(dy), where=dy != 0)  # horizontal edges cross no row
    per_edge = np.stack((np.arange(x.size, dtype=np.float64), x, y, slope, first - (ends - counts)))
    edge, x0, y0, slope, shift = np.repeat(per_edge, counts, axis=1)
    rows = np.arange(edge.size) + shift
    cross = x0 + slope * (rows - y0)
    # Parity of the crossings right of each pixel: per row, the count of ceil(x*) > c.
    local = (rows - r0).astype(np.int64)
    right = np.clip(np.ceil(cross) - c0, 0, w).astype(np.int64)
    le = np.bincount(local * (w + 1) + right, minlength=h * (w + 1)).reshape(h, w + 1).cumsum(axis=1)
    flips = le[:, w : w + 1] - le[:, :w]
    near = np.rint(cross)
    tie = np.flatnonzero((np.abs(near - cross) <= tol) & (near >= c0) & (near <= c1))
    if tie.size:  # the reference's own decision for the pixel next to the crossing
        e = edge[tie].astype(np.int64)
        tx, ty = near[tie], rows[tie]
        a0, b0, a1, b1 = x[e], y[e], ex[e], ey[e]
        above = b1 >= ty
        toggles = ((b1 - ty) * (a0 - a1) >= (a1 - tx) * (b0 - b1)) == above
        counted = tx < np.ceil(cross[tie])
        fix = np.bincount(local[tie] * w + (tx.astype(np.int64) - c0), weights=toggles != counted, minlength=h * w)
        flips = flips + fix.reshape(h, w).astype(np.int64)
    return r0, c0, (flips & 1).astype(bool)


def rasterize_polygons(polygons: list[Any], height: int, width: int) -> MaskCrop | None:
    """Union of COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` on a (height, width) grid.

    Each polygon is scan-converted over its bounding box only (``_polygon_inside``); the pixels are
    those of the reference's whole-image point-in-polygon test. Returns None for an empty mask.

    Raises:
        ValueError: a polygon is malformed or degenerate, or has a coordinate beyond 1e10 pixels.
    """
    if not isinstance(polygons, list) or not polygons:
        raise ValueError("segmentation has no polygon")
    parts: list[tuple[int, int, np.ndarray]] = []
    for poly in polygons:
        part = _polygon_inside(_polygon_points(poly), height, width)
        if part is not None:
            parts.append(part)
    if not parts:
        return None
    if len(parts) == 1:
        return tight_crop(parts[0][2], parts[0][0], parts[0][1])
    r0 = min(p[0] for p in parts)
    c0 = min(p[1] for p in parts)
    r1 = max(p[0] + p[2].shape[0] for p in parts)
    c1 = max(p[1] + p[2].shape[1] for p in parts)
    union = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    for pr, pc, inside in parts:
        union[pr - r0 : pr - r0 + inside.shape[0], pc - c0 : pc - c0 + inside.shape[1]] |= inside
    return tight_crop(union, r0, c0)


def segmentation_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    """pycocotools' compressed RLE (``counts`` bytes) of any COCO segmentation, checked first
    (``gains.core.checks.check_segmentation``); polygons are rasterised by pycocotools' rule, not GAMM's.

    Raises:
        ValueError: a segmentation the checks refuse.
    """
    from pycocotools import mask as mask_utils

    check_segmentation(segmentation, height, width)
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    counts = segmentation["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}


def decode_rle_mask(rle: dict[str, Any]) -> np.ndarray:
    """The bool (H, W) mask of a pycocotools RLE.

    Raises:
        ValueError: a corrupt compressed string.
    """
    from pycocotools import mask as mask_utils

    try:
        return mask_utils.decode(rle).astype(bool)
    except Exception as exc:  # pycocotools raises bare Exceptions on corrupt strings
        raise ValueError(f"corrupt RLE: {exc}") from exc


def decode_rle(segmentation: dict[str, Any], height: int, width: int) -> MaskCrop | None:
    """Decode a COCO RLE (compressed string or uncompressed counts list) of size [height, width].

    Raises:
        ValueError: an RLE that ``check_rle`` refuses, or a corrupt compressed string.
    """
    return tight_crop(decode_rle_mask(segmentation_rle(segmentation, height, width)))


def segmentation_to_crop(segmentation: Any, height: int, width: int) -> MaskCrop | None:
    """Rasterise any COCO segmentation (polygons, RLE, uncompressed RLE); None when empty.

    The segmentation is checked first (``gains.core.checks.check_segmentation``: finite numbers near the
    image, well-formed RLE).

    Raises:
        ValueError: malformed segmentation (the caller adds file and annotation id).
    """
    if isinstance(segmentation, dict):
        return decode_rle(segmentation, height, width)
    check_segmentation(segmentation, height, width)  # polygons, or a type it refuses
    return rasterize_polygons(segmentation, height, width)


def crop_to_rle(crop: MaskCrop, height: int, width: int) -> dict[str, Any]:
    """Compressed COCO RLE (counts as str, JSON-ready) of a mask crop placed in a (height, width) image.

    The runs are read off the crop alone (see ``crop_runs``): nothing of the image's size is made, so the
    cost follows the crop whatever the image's size. Bit for bit pycocotools' encoding of the full mask.
    """
    from pycocotools import mask as mask_utils

    rle = mask_utils.frPyObjects({"size": [height, width], "counts": crop_runs(crop, height, width)}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def crop_runs(crop: MaskCrop, height: int, width: int) -> list[int]:
    """Uncompressed COCO RLE counts of a crop placed in a (height, width) image, as pycocotools writes them:
    alternating run lengths of 0s and 1s in column-major order, starting with 0s (a run of length 0 when
    pixel (0, 0) is set), every run of length > 0 after that. ``crop.mask`` need not be tight.
    """
    h, w = crop.mask.shape
    padded = np.zeros((w, h + 2), dtype=np.int8)  # one crop column a row, an empty pixel above and below it
    padded[:, 1:-1] = crop.mask.T
    cols, rows = np.nonzero(np.diff(padded, axis=1))  # a run of 1s starts or ends at crop row ``rows``
    edges = (crop.x0 + cols).astype(np.int64) * height + (crop.y0 + rows)  # column-major image index, increasing
    joined = np.flatnonzero(edges[1:] == edges[:-1])  # a run ending at a column's foot as the next starts at its head
    edges = np.delete(edges, np.concatenate((joined, joined + 1)))
    runs = np.diff(edges, prepend=0, append=height * width)
    return runs[:-1].tolist() if runs[-1] == 0 else runs.tolist()



def crop_bbox(crop: MaskCrop) -> list[float]:
    """COCO xywh box of a mask crop: [x0, y0, x1 - x0, y1 - y0] with x1, y1 exclusive."""
    return [float(crop.x0), float(crop.y0), float(crop.x1 - crop.x0), float(crop.y1 - crop.y0)]


def mask_overlap(a: MaskCrop, b: MaskCrop) -> tuple[int, int, np.ndarray] | None:
    """(y0, x0, bool crop) of the pixels both masks hold, or None."""
    r0, r1 = max(a.y0, b.y0), min(a.y1, b.y1)
    c0, c1 = max(a.x0, b.x0), min(a.x1, b.x1)
    if r0 >= r1 or c0 >= c1:
        return None
    both = (a.mask[r0 - a.y0 : r1 - a.y0, c0 - a.x0 : c1 - a.x0]
            & b.mask[r0 - b.y0 : r1 - b.y0, c0 - b.x0 : c1 - b.x0])
    return (r0, c0, both) if both.any() else None
