"""Frame-local radial fields equal the reference's full-image np.gradient fields."""

from __future__ import annotations

import numpy as np
import pytest

from gains.core.masks import tight_crop
from gains.gamm.fields import SENTINEL, build_geometry, full_image_gmax, gradients


def full_fields(cy: float, cx: float, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    z = np.zeros((h, w))
    for m in range(h):
        for n in range(w):
            z[m, n] = (m - cy) ** 2 + (n - cx) ** 2
    return np.gradient(z)


@pytest.mark.parametrize(("cy", "cx", "h", "w"), [(10.0, 7.0, 20, 15), (3.25, 12.5, 9, 14), (0.4, 0.1, 6, 6),
                                                   (18.9, 14.9, 20, 15), (2.0, 2.0, 4, 5)])
def test_gradients_and_gmax_match_full_image(cy: float, cx: float, h: int, w: int) -> None:
    gy, gx = full_fields(cy, cx, h, w)
    for r0, r1, c0, c1 in [(0, h, 0, w), (1, h - 1, 2, w - 1), (0, 2, 0, w), (h - 2, h, 1, 3)]:
        sy, sx = gradients(r0, r1, c0, c1, cy, cx, h, w)
        np.testing.assert_array_equal(sy, gy[r0:r1, c0:c1])
        np.testing.assert_array_equal(sx, gx[r0:r1, c0:c1])
    assert full_image_gmax(cy, cx, h, w) == np.sqrt(gy**2 + gx**2).max()


def test_geometry_centroid_direction_and_sentinel() -> None:
    h, w, ws = 30, 40, 5
    dense = np.zeros((h, w), dtype=bool)
    dense[8:15, 20:31] = True
    geo = build_geometry(0, 1, tight_crop(dense), h, w, ws)
    rr, cc = np.nonzero(dense)
    assert geo.cy == np.mean(rr) and geo.cx == np.mean(cc)
    gy, gx = full_fields(geo.cy, geo.cx, h, w)
    for factor in (1, -1):
        want = np.arctan2(gy, factor * gx)
        want[~dense] = SENTINEL
        fh, fw = geo.frame_shape
        np.testing.assert_array_equal(geo.direction(factor), want[geo.fy0:geo.fy0 + fh, geo.fx0:geo.fx0 + fw])
    # anchors whose window touches the mask: rows 4..14, cols 16..30
    touching = np.argwhere(geo.count > 0) + np.array([geo.fy0, geo.fx0])
    assert touching[:, 0].min() == 8 - ws + 1 and touching[:, 0].max() == 14
    assert touching[:, 1].min() == 20 - ws + 1 and touching[:, 1].max() == 30
