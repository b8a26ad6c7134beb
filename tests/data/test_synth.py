"""Synthetic CTO scenes: deterministic, canonical, with true relation records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from gains.data.synth import KINDS, make_sample, write_synthetic


@pytest.mark.parametrize("kind", KINDS)
def test_scenes_are_deterministic_and_independent_of_set_size(kind: str) -> None:
    a, b = make_sample(kind, 3, 128, seed=7), make_sample(kind, 3, 128, seed=7)
    np.testing.assert_array_equal(a.image, b.image)
    assert len(a.masks) == len(b.masks) > 1
    c = make_sample(kind, 3, 128, seed=8)
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("kind", KINDS)
def test_written_dataset_is_canonical_and_relations_are_true(kind: str, tmp_path: Path) -> None:
    ann = write_synthetic(kind, 4, 128, 0, tmp_path / kind)
    doc = json.loads(ann.read_text())
    ids = [a["id"] for a in doc["annotations"]]
    assert ids == list(range(1, len(ids) + 1))
    masks = {}
    for a in doc["annotations"]:
        m = mask_utils.decode(a["segmentation"]).astype(bool)
        assert a["area"] == int(m.sum())
        rows, cols = np.nonzero(m)
        assert a["bbox"] == [cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()]
        masks[a["id"]] = m
    related = 0
    for a in doc["annotations"]:
        for other in a["cto"]["overlap"] + a["cto"]["cross"]:
            assert (masks[a["id"]] & masks[other]).any()
            related += 1
        for other in a["cto"]["touch"]:
            assert not (masks[a["id"]] & masks[other]).any()
            grown = np.zeros_like(masks[other])
            grown[1:] |= masks[other][:-1]
            grown[:-1] |= masks[other][1:]
            grown[:, 1:] |= masks[other][:, :-1]
            grown[:, :-1] |= masks[other][:, 1:]
            assert (grown & masks[a["id"]]).any()
            related += 1
    assert related > 0
    assert len(list((tmp_path / kind / "images").glob("*.png"))) == 4
