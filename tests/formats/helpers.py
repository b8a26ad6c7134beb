"""Rasterisers the tests read outlines back with: shapely (GEOS, what QuPath's JTS mirrors) and ImageJ's
even-odd rule over every ring of a ROI. Both test pixel centres, the pixel-edge convention's meaning."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import Polygon, shape

from gains.core.masks import tight_crop
from gains.formats.records import Record, records_from_instances
from gains.inference.predictor import Instance


def centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:height, :width]
    return xx + 0.5, yy + 0.5


def rasterise_geometry(geometry, height: int, width: int) -> np.ndarray:
    """Pixels (height, width) whose centre lies inside a GeoJSON geometry dict or a shapely geometry."""
    geom = shape(geometry) if isinstance(geometry, dict) else geometry
    return shapely.contains_xy(geom, *centres(height, width))


def rasterise_rings(rings: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Even-odd fill of closed or open rings (ImageJ's rule for composite ROIs, harmless for one ring)."""
    out = np.zeros((height, width), dtype=bool)
    for ring in rings:
        out ^= shapely.contains_xy(Polygon(np.asarray(ring, dtype=np.float64)), *centres(height, width))
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.hypot(yy - cy, xx - cx) < r


H, W = 64, 80
CATEGORIES = [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}]


def scene() -> list[np.ndarray]:
    """Two overlapping discs, a ring with a hole, a two-part instance and a single pixel."""
    a, b = disc(H, W, 30, 30, 12), disc(H, W, 32, 44, 11)  # overlap: each keeps the shared pixels
    ring = disc(H, W, 14, 64, 10) & ~disc(H, W, 14, 64, 4)
    two = disc(H, W, 52, 12, 5) | disc(H, W, 55, 70, 4)
    dot = np.zeros((H, W), bool)
    dot[0, 0] = True
    return [a, b, ring, two, dot]


def predicted(masks: list[np.ndarray]) -> list[Record]:
    instances = [Instance(1 + k % 2, 0.9 - 0.1 * k, tight_crop(m)) for k, m in enumerate(masks)]
    return records_from_instances(instances, CATEGORIES)
