"""Rasterisation follows the reference rule; RLE forms decode; bad segmentations are refused."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as MplPath
from pycocotools import mask as mask_utils

from gains.core.masks import MaskCrop, rasterize_polygons, segmentation_to_crop, tight_crop


def reference_raster(poly: list[float], h: int, w: int) -> np.ndarray:
    """The reference's full-grid test: point (x=c, y=r) inside the path."""
    yy, xx = np.mgrid[:h, :w]
    inside = MplPath(np.asarray(poly).reshape(-1, 2)).contains_points(np.column_stack([xx.ravel(), yy.ravel()]))
    return inside.reshape(h, w)


@pytest.mark.parametrize("seed", range(5))
def test_polygon_matches_full_grid_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 2 * np.pi, 12))
    r = rng.uniform(5, 15, 12)
    poly = np.column_stack([20 + r * np.cos(t), 18 + r * np.sin(t)]).ravel().tolist()
    crop = rasterize_polygons([poly], 40, 44)
    np.testing.assert_array_equal(crop.to_dense(40, 44), reference_raster(poly, 40, 44))


def test_integer_vertices_use_pixel_coordinates_without_centre_offset() -> None:
    # Square with corners at integer pixel coordinates (2,2)-(5,5): interior points 3..4 are inside.
    crop = rasterize_polygons([[2, 2, 5, 2, 5, 5, 2, 5]], 8, 8)
    dense = crop.to_dense(8, 8)
    assert dense[3:5, 3:5].all()
    assert not dense[0:2].any() and not dense[6:].any()


def test_multipolygon_is_union_and_clipped_to_image() -> None:
    a = [1, 1, 6, 1, 6, 6, 1, 6]
    b = [10, 10, 20, 10, 20, 20, 10, 20]  # reaches outside a 16x16 image
    crop = rasterize_polygons([a, b], 16, 16)
    want = reference_raster(a, 16, 16) | reference_raster(b, 16, 16)
    np.testing.assert_array_equal(crop.to_dense(16, 16), want)
    assert crop.y1 <= 16 and crop.x1 <= 16


def test_rle_compressed_and_uncompressed_decode_exactly() -> None:
    mask = np.zeros((12, 9), dtype=np.uint8)
    mask[2:7, 3:8] = 1
    mask[9, 0] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    compressed = {"size": [12, 9], "counts": rle["counts"].decode()}
    flat = mask.ravel(order="F")
    counts, run, value = [], 0, 0
    for v in flat:
        if v != value:
            counts.append(run)
            run, value = 0, v
        run += 1
    counts.append(run)
    for seg in (compressed, {"size": [12, 9], "counts": counts}):
        crop = segmentation_to_crop(seg, 12, 9)
        np.testing.assert_array_equal(crop.to_dense(12, 9), mask.astype(bool))


@pytest.mark.parametrize(
    ("seg", "message"),
    [
        ([[1, 2, 3, 4]], "coordinates"),
        ([[1, 2, 3, 4, 5]], "coordinates"),
        ([[1, 1, 2, 2, 3, 3]], "degenerate"),
        ([[0, 0, float("nan"), 1, 2, 2]], "non-finite"),
        ([], "no polygon"),
        ({"size": [5, 5], "counts": "00"}, "differs from the image size"),
        ({"size": [10, 10], "counts": [3, 4]}, "do not add up"),
        ("nonsense", "unsupported"),
    ],
)
def test_bad_segmentations_raise(seg, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        segmentation_to_crop(seg, 10, 10)


def test_polygon_outside_image_is_empty() -> None:
    assert rasterize_polygons([[100, 100, 110, 100, 110, 110]], 10, 10) is None


def test_tight_crop_round_trip() -> None:
    dense = np.zeros((7, 9), dtype=bool)
    dense[2, 3] = dense[5, 6] = True
    crop = tight_crop(dense)
    assert isinstance(crop, MaskCrop)
    assert (crop.y0, crop.x0, crop.y1, crop.x1, crop.area) == (2, 3, 6, 7, 2)
    np.testing.assert_array_equal(crop.to_dense(7, 9), dense)
    assert tight_crop(np.zeros((3, 3), dtype=bool)) is None
