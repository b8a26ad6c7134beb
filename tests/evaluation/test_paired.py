"""Paired statistics: exact sign test and a bootstrap interval around the mean."""

from __future__ import annotations

import numpy as np
import pytest

from gains.evaluation.paired import paired_stats


def test_sign_test_matches_binomial_by_hand() -> None:
    s = paired_stats(np.array([0.1, 0.2, 0.3, 0.05, -0.1, 0.0]))
    # 4 wins, 1 loss, 1 tie: p = 2 * (C(5,0) + C(5,1)) / 2^5 = 12/32
    assert (s["wins"], s["losses"]) == (4, 1)
    assert s["sign_p"] == pytest.approx(12 / 32)
    assert s["mean"] == pytest.approx(0.55 / 6)
    assert s["ci_low"] <= s["mean"] <= s["ci_high"]


def test_all_equal_and_clear_cases() -> None:
    assert paired_stats(np.zeros(5))["sign_p"] == 1.0
    clear = paired_stats(np.full(12, 0.2))
    assert clear["sign_p"] == pytest.approx(2 / 2**12) and clear["ci_low"] == pytest.approx(0.2)
