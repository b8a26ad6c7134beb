"""Paired comparison of two models on the same images: bootstrap CI and sign test (numpy only)."""

from __future__ import annotations

import math

import numpy as np


def paired_stats(diffs: np.ndarray, seed: int = 0, resamples: int = 2000) -> dict[str, float]:
    """Summary of per-image differences (model A - model B).

    Returns:
        mean; ci_low/ci_high: percentile bootstrap 95% interval of the mean; wins/losses: images with a
        positive/negative difference (ties left out); sign_p: exact two-sided sign-test p-value.
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    boots = rng.choice(diffs, size=(resamples, diffs.size), replace=True).mean(axis=1)
    pos, neg = int((diffs > 0).sum()), int((diffs < 0).sum())
    n, k = pos + neg, min(pos, neg)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return {"mean": float(diffs.mean()), "ci_low": float(np.percentile(boots, 2.5)),
            "ci_high": float(np.percentile(boots, 97.5)), "wins": pos, "losses": neg, "sign_p": p}
