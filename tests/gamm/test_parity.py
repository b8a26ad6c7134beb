"""Parity with the published GAMM scripts: the golden vectors of ../shared/gamm-golden."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gains.core.masks import segmentation_to_crop
from gains.gamm import GammParams, InstanceInput, image_maps
from tests.conftest import SHARED, shared_path

CASES = sorted(p.name for p in (SHARED / "gamm-golden").glob("*") if (p / "params.json").exists())


def load_case(name: str):
    root = shared_path("gamm-golden", name)
    params = json.loads((root / "params.json").read_text())
    doc = json.loads((root / "annotations.json").read_text())
    return root, params, doc


@pytest.mark.skipif(not CASES, reason="../shared/gamm-golden not available")
@pytest.mark.parametrize("case", CASES)
def test_golden_maps_and_masks(case: str) -> None:
    root, p, doc = load_case(case)
    height, width = p["image_size"]
    expected = np.load(root / "expected_maps.npz")
    ref_masks = np.load(root / "reference_masks.npz")
    instances = []
    for ann in doc["annotations"]:
        crop = segmentation_to_crop(ann["segmentation"], height, width)
        np.testing.assert_array_equal(crop.to_dense(height, width), ref_masks[str(ann["id"])],
                                      err_msg=f"{case}: mask of annotation {ann['id']}")
        instances.append(InstanceInput(ann["id"], ann["category_id"], crop, tuple(ann["bbox"])))
    params = GammParams(variant=p["variant"], window_size=p["ws"], ga_factor=p["ga"], overlap_hl=p["ol"],
                        target_category=p["target"])
    maps = image_maps(instances, height, width, params)
    assert len(maps) == len(doc["annotations"]) == p["n_instances"]
    nan_ids = set()
    for ann, gamap in zip(doc["annotations"], maps, strict=True):
        want = expected[str(ann["id"])]
        got = gamap.to_dense()
        assert got.shape == want.shape == (height, width)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{case}: NaN of {ann['id']}")
        finite = ~np.isnan(want)
        if finite.any():
            assert np.abs(got[finite] - want[finite]).max() <= 1e-6, f"{case}: annotation {ann['id']}"
        if np.isnan(want).all():
            nan_ids.add(str(ann["id"]))
    assert nan_ids == set(p["nan_maps"])


@pytest.mark.skipif(not CASES, reason="../shared/gamm-golden not available")
def test_golden_cases_are_not_trivial() -> None:
    """The comparison above is meaningful: most golden maps have anomalies well above 1."""
    lit = 0
    for case in CASES:
        root, _, _ = load_case(case)
        with np.load(root / "expected_maps.npz") as z:
            lit += sum(np.nanmax(z[k]) > 1.1 for k in z.files if not np.isnan(z[k]).all())
    assert lit >= 50
