"""Thin synthetic scenes: long curved objects whose measured length / width is 10-40, crossing and touching."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from skimage.morphology import skeletonize

from gains.cli.synth import KINDS as CLI_KINDS
from gains.data.stats import dataset_stats
from gains.data.synth import KINDS, _tube, make_sample


def aspect(mask: np.ndarray) -> float:
    """Length / width of a tube-shaped mask, measured on its pixels: the skeleton's length S (edges between
    8-neighbours, diagonals sqrt 2) and the width w with area = w (S + w) (a tube whose skeleton stops w / 2
    short of each rounded end), so length / width = (S + w) / w."""
    p = np.pad(skeletonize(mask), 1)
    c = p[1:-1, 1:-1]
    straight = np.count_nonzero(c & p[1:-1, 2:]) + np.count_nonzero(c & p[2:, 1:-1])
    diagonal = (np.count_nonzero(c & p[2:, 2:] & ~p[1:-1, 2:] & ~p[2:, 1:-1])
                + np.count_nonzero(c & p[2:, :-2] & ~p[1:-1, :-2] & ~p[2:, 1:-1]))
    skel = straight + np.sqrt(2) * diagonal
    width = (np.sqrt(skel**2 + 4 * np.count_nonzero(mask)) - skel) / 2
    return float((skel + width) / width)


def test_the_aspect_measure_is_true_on_a_drawn_tube() -> None:
    line = np.column_stack((np.full(201, 50.0), np.linspace(20, 120, 201)))  # 100 px long, 5 px wide: (100+5)/5
    mask, _ = _tube(160, line, 2.5)
    assert abs(aspect(mask) - 21.0) < 1.0
    arc = np.linspace(0, np.pi, 400)  # a half circle of radius 50, 6 px wide: (157 + 6) / 6 = 27.2
    mask, _ = _tube(160, np.column_stack((80 + 50 * np.sin(arc), 80 + 50 * np.cos(arc))), 3.0)
    assert abs(aspect(mask) - 27.2) < 3.0


def test_thin_objects_are_long_curved_and_mostly_cross() -> None:
    samples = [make_sample("thin", i, 256, seed=0) for i in range(20)]
    counts = [len(s.masks) for s in samples]
    assert min(counts) >= 4 and max(counts) <= 8
    ratios = np.array([aspect(m) for s in samples for m in s.masks])
    assert np.mean((ratios >= 10) & (ratios <= 40)) >= 0.9 and 15 <= np.median(ratios) <= 30
    widths = [(np.count_nonzero(m) / aspect(m)) ** 0.5 for s in samples for m in s.masks]  # area = w^2 aspect
    assert np.percentile(widths, 5) >= 2.5 and np.percentile(widths, 95) <= 9
    crossing = [s for s in samples if any(e["cto"]["cross"] for e in s.extra)]
    touching = [s for s in samples if any(e["cto"]["touch"] for e in s.extra)]
    assert len(crossing) >= 16 and len(touching) >= 5
    for s in samples:  # the records are the masks' truth: crossing pairs share pixels, touching ones never do
        for i, e in enumerate(s.extra):
            assert all((s.masks[i] & s.masks[j - 1]).any() for j in e["cto"]["cross"])
            assert not any((s.masks[i] & s.masks[j - 1]).any() for j in e["cto"]["touch"])


def test_thin_scenes_are_deterministic() -> None:
    a, b, c = make_sample("thin", 5, 256, 3), make_sample("thin", 5, 256, 3), make_sample("thin", 6, 256, 3)
    np.testing.assert_array_equal(a.image, b.image)
    assert all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks, strict=True))
    assert not np.array_equal(a.image, c.image)


def test_gains_synth_thin_writes_a_dataset_whose_crossings_stats_counts(tmp_path: Path) -> None:
    assert CLI_KINDS == KINDS
    out = tmp_path / "thin"
    res = subprocess.run([sys.executable, "-m", "gains", "synth", "thin", "--n", "20", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads((out / "annotations.json").read_text())
    assert len(doc["images"]) == 20 and doc["categories"] == [{"id": 1, "name": "worm"}]
    masks = {a["id"]: mask_utils.decode(a["segmentation"]).astype(bool) for a in doc["annotations"]}
    recorded = {tuple(sorted((a["id"], j))) for a in doc["annotations"] for j in a["cto"]["cross"]}
    assert recorded and all((masks[i] & masks[j]).any() for i, j in recorded)
    stats = dataset_stats(out / "annotations.json")
    assert stats["cross_pairs"] > 0 and stats["touch_pairs"] > 0 and stats["cto_instances"]["cross"] > 0
