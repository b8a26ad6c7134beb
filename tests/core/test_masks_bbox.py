"""Bounding-box scan conversion gives exactly the reference's whole-image point-in-polygon pixels.

The reference rule: pixel (r, c) is inside when the point (x=c, y=r) is, per matplotlib.path over
every pixel of the image; a multi-polygon is the union of its parts. The cases below aim at the
places a faster rasteriser could differ: vertices and edges exactly on pixel points, horizontal edges
on pixel rows, slivers, polygons crossing the image border, unions, self-touching and
self-intersecting rings, vertices a hair away from integers, large coordinates.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from gains.core import masks as raster
from gains.core.masks import rasterize_polygons
from tests.conftest import SHARED

GOLDEN = [pytest.param(p.parent, id=p.parent.name, marks=[pytest.mark.slow] * p.parent.name.startswith("full_"))
          for p in sorted((SHARED / "gamm-golden").glob("*/params.json"))]


def whole_image_reference(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """The reference rule over the whole image: bool (height, width)."""
    yy, xx = np.mgrid[:height, :width]
    grid = np.column_stack([xx.ravel(), yy.ravel()]).astype(np.float64)
    out = np.zeros(height * width, dtype=bool)
    for poly in polygons:
        out |= MplPath(np.asarray(poly, dtype=np.float64).reshape(-1, 2)).contains_points(grid)
    return out.reshape(height, width)


def ours(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    crop = rasterize_polygons(polygons, height, width)
    return np.zeros((height, width), dtype=bool) if crop is None else crop.to_dense(height, width)


def assert_same(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    want = whole_image_reference(polygons, height, width)
    np.testing.assert_array_equal(ours(polygons, height, width), want, err_msg=f"polygons {polygons}")
    return want


@pytest.mark.skipif(not GOLDEN, reason="../shared/gamm-golden not available")
@pytest.mark.parametrize("case", GOLDEN)
def test_every_golden_polygon_matches_the_whole_image_rule(case) -> None:
    """Against matplotlib.path over every pixel here, and the reference scripts' own masks."""
    height, width = json.loads((case / "params.json").read_text())["image_size"]
    doc = json.loads((case / "annotations.json").read_text())
    lit = 0
    with np.load(case / "reference_masks.npz") as reference_masks:
        for ann in doc["annotations"]:
            want = assert_same(ann["segmentation"], height, width)
            np.testing.assert_array_equal(want, reference_masks[str(ann["id"])])
            lit += int(want.sum())
    assert lit > 0


def _ring(rng: np.random.Generator, n: int, cx: float, cy: float, r_lo: float, r_hi: float) -> np.ndarray:
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(r_lo, r_hi, n)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])


@pytest.mark.parametrize("seed", range(12))
def test_vertices_on_pixel_points_and_half_pixels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ring = _ring(rng, int(rng.integers(3, 20)), 15, 13, 2, 14)
    assert_same([np.round(ring).ravel().tolist()], 27, 31)  # integer vertices: edges through pixel points
    assert_same([(np.round(ring * 2) / 2).ravel().tolist()], 27, 31)  # half-integers, as contour tracers give


@pytest.mark.parametrize("seed", range(8))
def test_random_integer_polygons_self_intersecting_and_crossing_the_border(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    pts = rng.integers(-6, 26, size=(int(rng.integers(3, 12)), 2)).astype(np.float64)  # unordered: self-crossing
    if abs(np.dot(pts[:, 0], np.roll(pts[:, 1], -1)) - np.dot(pts[:, 1], np.roll(pts[:, 0], -1))) == 0:
        pts[0] += 0.5  # keep it non-degenerate (zero area is refused)
    assert_same([pts.ravel().tolist()], 20, 18)


def test_axis_aligned_rectangles_with_edges_on_pixel_rows_and_columns() -> None:
    rects = ([2, 2, 5, 2, 5, 5, 2, 5], [5, 5, 2, 5, 2, 2, 5, 2], [0, 0, 9, 0, 9, 7, 0, 7], [3, 1, 4, 1, 4, 8, 3, 8])
    for rect in rects:
        want = assert_same([rect], 10, 10)
        assert want.any()


def test_slivers_and_needles() -> None:
    polys = [
        [0, 0, 20, 20, 20, 20 + 1e-9],  # needle along the diagonal through pixel points
        [1, 3, 18, 3, 18, 3.0000001],  # horizontal sliver on a pixel row
        [4, 0.5, 4 + 1e-12, 0.5, 4, 15.5],  # vertical sliver on a pixel column
        [2, 2, 17, 9, 3, 2.5],  # thin triangle between rows
        [0.5, 0.5, 18.5, 0.5000001, 18.5, 1.5, 0.5, 1.5000001],  # nearly-rectangular, just off the lattice
    ]
    for poly in polys:
        assert_same([poly], 20, 20)


def test_vertices_a_hair_from_integers() -> None:
    eps = (1e-15, 1e-13, 1e-11, -1e-13, 1e-9)
    for e in eps:
        assert_same([[5 + e, 5, 12, 5 - e, 12 + e, 11, 5, 11 + e]], 16, 16)
        assert_same([[5 - e, 2, 9, 6 + e, 5 + e, 10, 1 - e, 6]], 16, 16)  # a diamond through pixel points


def test_decimal_vertices_whose_crossings_hit_pixels_only_up_to_rounding() -> None:
    """In binary, 0.1-step coordinates put crossings a few ulps off pixel points: the tolerance cases."""
    found = [  # each differed from the reference by one pixel when nothing within rounding went to matplotlib
        [12.6, 10.9, -0.2, 3.3, 13.4, 6.9, 1.7, -1.2, -0.5, 6.8],
        [10.7, -1.1, 4.9, 6.9, -0.8, -1.8],
        [-0.2, -2.0, 4.9, 6.2, 10.5, 5.7, -2.0, 2.0, 12.5, 4.9],
        [4.2, 8.4, 5.6, 6.1, 13.0, 2.0, 10.8, 13.8, 12.6, 12.2, 0.0, 10.5],
    ]
    rng = np.random.default_rng(11)
    for _ in range(150):
        found.append((rng.integers(-20, 140, size=2 * int(rng.integers(3, 7))) / 10.0).tolist())
    for poly in found:
        try:
            assert_same([poly], 14, 14)
        except ValueError as exc:  # a random zero-area ring is refused by both paths alike
            assert "degenerate" in str(exc)


def test_polygons_crossing_or_covering_the_image_border() -> None:
    polys = [
        [-5, -5, 30, -5, 30, 30, -5, 30],  # covers the whole image
        [-3.5, 4, 6, -2, 8, 7, 3, 22],  # crosses top, left and bottom
        [10, 10, 40, 12, 38, 40, 12, 35],  # runs off bottom-right
        [-10, -10, -1, -10, -1, -1],  # entirely outside (left/above)
        [-1e4, 5, 1e4, 5.5, 1e4, 6.5, -1e4, 6],  # a long band with far-away vertices
    ]
    for poly in polys:
        assert_same([poly], 15, 17)


def test_large_coordinates_far_from_the_origin() -> None:
    assert_same([[1e6, -1e6, 12.5, 3, 5, 9, -1e6, 1e6]], 14, 14)
    assert_same([[-123456.5, 4, 7, 4, 7, 9]], 12, 12)
    assert_same([[-5e9, 3, 5e9, 3.5, 5e9, 8.5, -5e9, 8]], 12, 12)  # tolerance 0.05 px at this scale
    with pytest.raises(ValueError, match="beyond 1e"):
        rasterize_polygons([[2e10, 3, 5, 3, 5, 8]], 12, 12)


def test_multipolygons_are_unions() -> None:
    a = [1, 1, 8, 1, 8, 8, 1, 8]
    cases = [
        [a, [5, 5, 14, 5, 14, 14, 5, 14]],  # overlapping
        [a, [3, 3, 6, 3, 6, 6, 3, 6]],  # nested: the union is the outer square
        [a, [11.5, 11.5, 15.5, 12, 13, 15.5]],  # disjoint
        [a, [30, 30, 40, 30, 40, 40]],  # one part outside the image
        [[-4, -4, 2, -4, 2, 2], [14, 14, 20, 14, 20, 20]],  # parts in two corners, both clipped
    ]
    for polys in cases:
        assert_same(polys, 16, 16)


def test_self_touching_and_self_intersecting_rings() -> None:
    polys = [
        [1, 1, 12, 12, 12, 3, 2, 8],  # unequal bow-tie crossing at pixel point (6, 6)
        [1, 1, 6, 1, 6, 6, 11, 6, 11, 11, 6, 11, 6, 6, 1, 6],  # two squares touching at a vertex in one ring
        [1, 1, 12, 1, 12, 12, 6, 12, 6, 6, 6, 12, 1, 12],  # a zero-width spike (edge there and back)
        [2, 2, 2, 2, 9, 2, 9, 9, 9, 9, 2, 9, 2, 2],  # repeated vertices, closing vertex repeated
    ]
    t = np.arange(10) * 2 * np.pi * 3 / 10  # a {10/3} star: every point visited, rings cross
    polys.append(np.column_stack([7 + 6 * np.cos(t), 7 + 6 * np.sin(t)]).round().ravel().tolist())
    for poly in polys:
        assert_same([poly], 14, 14)


@pytest.mark.parametrize("seed", range(6))
def test_many_vertex_float_polygons(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    ring = _ring(rng, 300, 40, 36, 10, 34)  # star-shaped, parts off the 70 x 80 image
    assert_same([ring.ravel().tolist()], 70, 80)


def test_pixels_next_to_a_crossing_need_the_exact_tie_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counted parity alone is wrong on edges through pixel points; the exact tie test fixes it."""
    polys = [[10, 10, 50, 10, 50, 50, 10, 50], [12.6, 10.9, -0.2, 3.3, 13.4, 6.9, 1.7, -1.2, -0.5, 6.8],
             [10.7, -1.1, 4.9, 6.9, -0.8, -1.8], [2, 2, 9, 5, 4, 12]]
    for poly in polys:
        assert_same([poly], 64, 64)
    monkeypatch.setattr(raster, "_TIE_TOLERANCE", -1.0)  # no pixel counts as near a crossing
    wrong = sum(not np.array_equal(ours([p], 64, 64), whole_image_reference([p], 64, 64)) for p in polys)
    assert wrong == len(polys)
