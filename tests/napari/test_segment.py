"""The widget's Qt-free work: progress per tile, then the result layers of a tiny model's prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gains.errors import InputError
from gains.napari.segment import segment


def drain(gen):
    """(yielded steps, returned value) of a generator."""
    steps = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        return steps, stop.value


def test_segment_reports_each_tile_and_returns_layers(tiny_run: Path) -> None:
    pixels = (np.random.default_rng(1).random((160, 150)) * 255).astype(np.uint8)
    steps, layers = drain(segment(str(tiny_run), pixels, "img", score_thresh=0.0, tile=96, overlap=32, device="cpu"))
    assert steps[0] == (0, 0, "loading model") and steps[1][2].startswith("scale")  # the scale note
    tiles = [(d, t) for d, t, what in steps if what == "predicting"]
    assert tiles == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]  # 2 x 2 tiles of 96 px with 32 px overlap
    labels = [kw for _, kw, kind in layers if kind == "labels"]
    n = sum(len(kw["features"]["index"]) for kw in labels)
    assert steps[-1] == (0, 0, f"{n} instances: building layers")
    assert all(data.shape == (160, 150) for data, _, _ in layers)
    assert labels[0]["name"].startswith("img instances")


def test_segment_refuses_a_missing_model(tmp_path: Path) -> None:
    gen = segment(str(tmp_path / "none.pt"), np.zeros((32, 32), np.uint8), "img", device="cpu")
    assert next(gen) == (0, 0, "loading model")
    with pytest.raises(InputError, match=r"none\.pt"):
        next(gen)


def test_segment_turns_bad_settings_and_pixels_into_one_line(tiny_run: Path) -> None:
    gen = segment(str(tiny_run), np.zeros((64, 64), np.uint8), "img", tile=64, overlap=64, device="cpu")
    with pytest.raises(InputError, match="tile 64, overlap 64: overlap must be smaller than the tile"):
        drain(gen)
    bad = np.full((64, 64), np.nan, np.float32)
    with pytest.raises(InputError, match="layer 'img': "):
        drain(segment(str(tiny_run), bad, "img", device="cpu"))
