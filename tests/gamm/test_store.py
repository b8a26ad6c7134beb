"""The compact store keeps maps within the stated precision and refuses stale contents."""

from __future__ import annotations

import numpy as np
import pytest

from gains.gamm.gamap import GaMap
from gains.gamm.store import StoreKey, decode_map, encode_image_maps


def sample_maps() -> list[GaMap]:
    rng = np.random.default_rng(0)
    return [
        GaMap(40, 50, 5, 7, 1.0 + 0.8 * rng.random((10, 12))),
        GaMap(40, 50),
        GaMap(40, 50, fill=np.nan),
        GaMap(40, 50, fill=0.0),
        GaMap(40, 50, 0, 0, np.pad(1.0 + 0.5 * rng.random((4, 4)), ((3, 0), (0, 2)), constant_values=1.0)),
    ]


@pytest.mark.parametrize(("precision", "tol"), [("float16", 0.8 * 2.0**-11), ("float32", 0.8 * 2.0**-24)])
def test_round_trip_within_stated_precision(precision: str, tol: float) -> None:
    maps = sample_maps()
    arrays = encode_image_maps([11, 12, 13, 14, 15], maps, precision)
    for j, m in enumerate(maps):
        got = decode_map(arrays, j, 40, 50)
        want = m.to_dense()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        if ok.any():
            assert np.abs(got[ok] - want[ok]).max() <= tol + 1e-7
    # only the region that differs from the fill is stored: the padded crop is trimmed to 4x4
    assert tuple(arrays["boxes"][4]) == (3, 0, 4, 4)
    assert arrays["data"].size == 10 * 12 + 4 * 4


def test_key_mismatch_names_the_difference() -> None:
    key = StoreKey({"variant": "isbi"}, "abc", False, "float16", "0.1.0")
    manifest = {"params": {"variant": "isbi"}, "annotations_sha256": "abd", "raw": False,
                "precision": "float16", "version": "0.1.0"}
    assert "annotations_sha256" in key.mismatch(manifest)
    manifest["annotations_sha256"] = "abc"
    assert key.mismatch(manifest) is None
