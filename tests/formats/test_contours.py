"""Pixel-edge polygons: exact round trip to the mask, valid geometry, parts and holes where they belong.

Tolerance: none. Vertices lie on pixel corners and pixel centres never on an edge, so every pixel is
either inside or outside and the rasterised polygon must equal the mask bit for bit (IoU 1.0).
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from scipy import ndimage
from shapely.geometry import MultiPolygon, Polygon

from gains.core.masks import MaskCrop, tight_crop
from gains.formats.contours import mask_polygons, polygon_area
from tests.formats.helpers import disc, iou, rasterise_geometry

H, W = 64, 80


def as_shapely(polygons):
    parts = [Polygon(p[0], p[1:]) for p in polygons]
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def check_round_trip(mask: np.ndarray) -> list:
    crop = tight_crop(mask)
    polygons = mask_polygons(crop)
    geom = as_shapely(polygons)
    assert geom.is_valid, shapely.is_valid_reason(geom)
    back = rasterise_geometry(geom, *mask.shape)
    assert iou(back, mask) == 1.0
    np.testing.assert_array_equal(back, mask)
    assert sum(polygon_area(p) for p in polygons) == np.count_nonzero(mask) == geom.area
    assert len(polygons) == ndimage.label(mask)[1]  # one polygon per 4-connected part
    for polygon in polygons:
        assert shapely.LinearRing(polygon[0]).is_ccw  # exterior: right-hand rule (y up)
        assert not any(shapely.LinearRing(h).is_ccw for h in polygon[1:])
        assert all(r.dtype == np.int64 and r.shape[1] == 2 and len(r) >= 4 for r in polygon)
    return polygons


def test_disc_is_one_ring_on_pixel_corners() -> None:
    polygons = check_round_trip(disc(H, W, 30, 40, 12.5))
    assert len(polygons) == 1 and len(polygons[0]) == 1


def test_single_pixel_and_full_rectangle() -> None:
    one = np.zeros((H, W), bool)
    one[5, 7] = True
    (ring,), = check_round_trip(one)
    assert sorted(map(tuple, ring.tolist())) == [(7, 5), (7, 6), (8, 5), (8, 6)]  # the pixel's four corners
    full = np.zeros((H, W), bool)
    full[3:9, 10:30] = True
    (ring,), = check_round_trip(full)
    assert len(ring) == 4 and ring.min(axis=0).tolist() == [10, 3] and ring.max(axis=0).tolist() == [30, 9]


def test_ring_keeps_its_hole() -> None:
    mask = disc(H, W, 30, 40, 16) & ~disc(H, W, 30, 40, 7)
    polygons = check_round_trip(mask)
    assert len(polygons) == 1 and len(polygons[0]) == 2


def test_two_parts_are_two_polygons_largest_first() -> None:
    mask = disc(H, W, 20, 20, 10) | disc(H, W, 45, 60, 6)
    polygons = check_round_trip(mask)
    assert len(polygons) == 2 and polygon_area(polygons[0]) > polygon_area(polygons[1])


@pytest.mark.parametrize("rows", [
    ["10", "01"],  # two pixels touching at a corner: two parts meeting at one point
    ["1111", "1001", "1101", "0111"],  # a bay closed at a corner: a hole touching the exterior
    ["11111", "10101", "11011", "10101", "11111"],  # holes touching each other at corners
    ["111", "101", "111", "000", "010"],  # a hole and a second part
    ["11111", "10001", "10101", "10001", "11111"],  # an island inside a hole
])
def test_pinches_give_valid_geometry(rows: list[str]) -> None:
    small = np.array([[c == "1" for c in r] for r in rows])
    mask = np.zeros((H, W), bool)
    mask[10 : 10 + small.shape[0], 20 : 20 + small.shape[1]] = small
    check_round_trip(mask)


def test_random_masks_round_trip_exactly() -> None:
    rng = np.random.default_rng(0)
    for k in range(300):
        h, w = rng.integers(1, 30, 2)
        if k % 2:
            small = rng.random((h, w)) < rng.uniform(0.2, 0.8)  # salt and pepper: corners everywhere
        else:
            small = ndimage.gaussian_filter(rng.random((h, w)), 1.5) > 0.5  # blobs with holes
        if not small.any():
            continue
        mask = np.zeros((H, W), bool)
        mask[5 : 5 + h, 7 : 7 + w] = small
        check_round_trip(mask)


def test_coordinates_are_image_coordinates() -> None:
    crop = MaskCrop(100, 200, np.ones((2, 3), bool))
    (ring,), = mask_polygons(crop)
    assert ring.min(axis=0).tolist() == [200, 100] and ring.max(axis=0).tolist() == [203, 102]


def test_bad_masks_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        mask_polygons(MaskCrop(0, 0, np.zeros((2, 2), bool)))
    with pytest.raises(ValueError, match="bool"):
        mask_polygons(MaskCrop(0, 0, np.ones((2, 2), np.uint8)))
    with pytest.raises(ValueError, match="2-D"):
        mask_polygons(MaskCrop(0, 0, np.ones((2, 2, 2), bool)))
