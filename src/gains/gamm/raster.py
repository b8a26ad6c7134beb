"""Instance masks for GAMM, rasterised exactly as the reference scripts do.

Convention: pixel (row r, col c) is inside a polygon iff the point (x=c, y=r) — integer pixel
coordinates, no +0.5 centre offset — is inside it per ``matplotlib.path.Path.contains_points``
(spec 1.2). A multi-polygon instance is the union of its parts. RLE segmentations (compressed or
not) are decoded with pycocotools. Masks are returned as tight crops to keep work on bounding boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.path import Path


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
    area2 = np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))
    if abs(area2) == 0.0:
        raise ValueError("degenerate polygon (zero area)")
    return pts


def rasterize_polygons(polygons: list[Any], height: int, width: int) -> MaskCrop | None:
    """Union of COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` on a (height, width) grid.

    Only grid points inside each polygon's extent are tested. Returns None for an empty mask.

    Raises:
        ValueError: a polygon is malformed or degenerate.
    """
    if not isinstance(polygons, list) or not polygons:
        raise ValueError("segmentation has no polygon")
    parts: list[tuple[int, int, np.ndarray]] = []
    for poly in polygons:
        pts = _polygon_points(poly)
        c0 = max(int(np.ceil(pts[:, 0].min())), 0)
        c1 = min(int(np.floor(pts[:, 0].max())), width - 1)
        r0 = max(int(np.ceil(pts[:, 1].min())), 0)
        r1 = min(int(np.floor(pts[:, 1].max())), height - 1)
        if c1 < c0 or r1 < r0:
            continue
        yy, xx = np.mgrid[r0 : r1 + 1, c0 : c1 + 1]
        grid = np.column_stack((xx.ravel(), yy.ravel())).astype(np.float64)
        inside = Path(pts).contains_points(grid).reshape(yy.shape)
        parts.append((r0, c0, inside))
    if not parts:
        return None
    r0 = min(p[0] for p in parts)
    c0 = min(p[1] for p in parts)
    r1 = max(p[0] + p[2].shape[0] for p in parts)
    c1 = max(p[1] + p[2].shape[1] for p in parts)
    union = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    for pr, pc, inside in parts:
        union[pr - r0 : pr - r0 + inside.shape[0], pc - c0 : pc - c0 + inside.shape[1]] |= inside
    return tight_crop(union, r0, c0)


def decode_rle(segmentation: dict[str, Any], height: int, width: int) -> MaskCrop | None:
    """Decode a COCO RLE (compressed string or uncompressed counts list) of size [height, width]."""
    from pycocotools import mask as mask_utils

    size = segmentation.get("size")
    counts = segmentation.get("counts")
    if size is None or counts is None:
        raise ValueError("RLE segmentation needs 'size' and 'counts'")
    if [int(s) for s in size] != [height, width]:
        raise ValueError(f"RLE size {list(size)} differs from the image size [{height}, {width}]")
    if isinstance(counts, list):
        if sum(int(c) for c in counts) != height * width:
            raise ValueError("uncompressed RLE counts do not add up to height * width")
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    elif isinstance(counts, (str, bytes)):
        rle = {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
    else:
        raise ValueError("RLE 'counts' must be a string or a list of integers")
    try:
        dense = mask_utils.decode(rle).astype(bool)
    except Exception as exc:  # pycocotools raises bare Exceptions on corrupt strings
        raise ValueError(f"corrupt RLE: {exc}") from exc
    return tight_crop(dense)


def segmentation_to_crop(segmentation: Any, height: int, width: int) -> MaskCrop | None:
    """Rasterise any COCO segmentation (polygons, RLE, uncompressed RLE); None when empty.

    Raises:
        ValueError: malformed segmentation (the caller adds file and annotation id).
    """
    if isinstance(segmentation, dict):
        return decode_rle(segmentation, height, width)
    if isinstance(segmentation, list):
        return rasterize_polygons(segmentation, height, width)
    raise ValueError(f"unsupported segmentation type {type(segmentation).__name__}")
