"""Box-filter window statistics equal brute-force np.std, also where the variance is tiny."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from gains.gamm.windows import box_sums, exact_std, refine_small, std_from_moments


@pytest.mark.parametrize("ws", [2, 5, 8])
def test_box_sums_equal_window_sums(ws: int) -> None:
    x = np.random.default_rng(ws).normal(size=(3, 20, 17))
    want = sliding_window_view(x, (ws, ws), axis=(-2, -1)).sum(axis=(-2, -1))
    np.testing.assert_allclose(box_sums(x, ws), want, rtol=0, atol=1e-12)


def test_masked_std_with_exact_fallback_matches_np_std() -> None:
    rng = np.random.default_rng(0)
    ws = 5
    theta = rng.uniform(-np.pi, np.pi, (30, 30))
    theta[10:20, 10:20] = 0.7  # constant patch: variance exactly 0 in the reference
    theta[0:6, 20:26] = 0.3 + 1e-9 * rng.normal(size=(6, 6))  # tiny variance: the moments formula fails here
    mask = rng.random((30, 30)) < 0.7
    s = box_sums(np.stack([theta * mask, theta * theta * mask, mask.astype(float)]), ws)
    n = s[2]
    std, var = std_from_moments(s[0], s[1], n)
    valid = n > 0
    refine_small(std, var, valid, [(theta, mask)], ws)
    win_t = sliding_window_view(theta, (ws, ws))
    win_m = sliding_window_view(mask, (ws, ws))
    for r, c in zip(*np.nonzero(valid), strict=True):
        ref = np.std(win_t[r, c][win_m[r, c]])
        assert abs(std[r, c] - ref) < 1e-12, (r, c)


def test_exact_std_concatenates_masked_parts() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    ma, mb = rng.random((6, 6)) < 0.5, rng.random((6, 6)) < 0.5
    rows, cols = np.array([0, 2]), np.array([1, 0])
    got = exact_std([(a, ma), (b, mb)], rows, cols, 4)
    for k, (r, c) in enumerate(zip(rows, cols, strict=True)):
        vals = np.concatenate([a[r:r + 4, c:c + 4][ma[r:r + 4, c:c + 4]], b[r:r + 4, c:c + 4][mb[r:r + 4, c:c + 4]]])
        assert abs(got[k] - np.std(vals)) < 1e-14
