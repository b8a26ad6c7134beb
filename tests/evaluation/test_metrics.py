"""Every metric definition pinned by a hand-computed example."""

from __future__ import annotations

import numpy as np
import pytest

from gains.evaluation.metrics import aji_gains, aji_kumar, aji_plus, dsb_score, pq_f1

# A: preds d0..d2 (score order) against g0, g1
A = (np.array([[80.0, 0.0], [10.0, 40.0], [0.0, 20.0]]), np.array([90.0, 60.0, 30.0]), np.array([100.0, 50.0]))
# IoU: d0g0 = 80/110, d1g0 = 10/150, d1g1 = 40/70, d2g1 = 20/60
# B: one large prediction over two ground truths, IoU 0.4 each
B = (np.array([[40.0, 40.0]]), np.array([100.0]), np.array([40.0, 40.0]))
# C: d0 is the best match of both g0 (IoU 0.6) and g1 (IoU 0.7); d1 matches g1 at 0.55
C_iou_inter = np.array([[60.0, 70.0], [0.0, 55.0]])
C = (C_iou_inter, np.array([100.0, 100.0]), np.array([60.0, 70.0]))


def test_aji_gains() -> None:
    assert aji_gains(*A) == pytest.approx(120 / 210)
    assert aji_gains(*B) == 0.0  # IoU 0.4 < 0.5: nothing matched, everything in the union
    # C: g0 takes d0 (I 60, U 100); g1 cannot reuse d0 and takes d1 (IoU 55/115 < 0.5 -> no match)
    assert aji_gains(*C) == pytest.approx(60 / (100 + 70 + 100))


def test_aji_kumar() -> None:
    assert aji_kumar(*A) == pytest.approx(120 / 210)
    assert aji_kumar(*B) == pytest.approx(80 / 200)  # d0 serves both ground truths
    # C: g0 -> d0 (60/100), g1 -> d0 (70/100); d1 never used adds 100
    assert aji_kumar(*C) == pytest.approx(130 / 300)


def test_aji_plus() -> None:
    assert aji_plus(*A) == pytest.approx(120 / 210)
    assert aji_plus(*B) == pytest.approx(40 / 140)
    # C: one-to-one maximising IoU: d0-g1 (0.7) + d1-g0 (0) is worse than d0-g0 (0.6) + d1-g1 (55/115)
    assert aji_plus(*C) == pytest.approx((60 + 55) / (100 + 115))


def test_pq_and_f1() -> None:
    pq, f1 = pq_f1(*A)
    assert pq == pytest.approx((80 / 110 + 40 / 70) / 2.5)
    assert f1 == pytest.approx(0.8)
    assert pq_f1(*B) == (0.0, 0.0)


def test_dsb_score() -> None:
    # t = 0.50, 0.55: two matches -> 2/3; t = 0.60..0.70: one -> 1/4; t >= 0.75: none
    assert dsb_score(*A) == pytest.approx((2 * 2 / 3 + 3 * 1 / 4) / 10)
    perfect = (np.diag([5.0, 7.0]), np.array([5.0, 7.0]), np.array([5.0, 7.0]))
    assert dsb_score(*perfect) == 1.0


@pytest.mark.parametrize("fn", [aji_gains, aji_kumar, aji_plus, dsb_score])
def test_empty_sides(fn) -> None:
    assert fn(np.zeros((0, 2)), np.zeros(0), np.array([3.0, 4.0])) == 0.0
    assert fn(np.zeros((2, 0)), np.array([3.0, 4.0]), np.zeros(0)) == 0.0
    assert np.isnan(fn(np.zeros((0, 0)), np.zeros(0), np.zeros(0)))
