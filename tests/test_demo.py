"""gains demo's options: a start from a shipped model (its anchors with it), and a bad start refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from gains.cli import main
from gains.config import config_from_dict
from gains.demo import ZOO_ANCHORS, demo_config


def test_demo_config_from_a_shipped_model_takes_its_anchors() -> None:
    scratch = config_from_dict(demo_config(5, 256, 40, 10))
    start = config_from_dict(demo_config(5, 256, 40, 10, weights="nuclei"))
    assert scratch.model.weights == "none" and scratch.model.anchor_sizes != ZOO_ANCHORS
    assert start.model.weights == "nuclei" and list(start.model.anchor_sizes) == ZOO_ANCHORS
    assert start.train == scratch.train and start.data == scratch.data


@pytest.mark.parametrize("weights, message", [("nucleii", "nuclei"), ("runs/missing/last.pt", "no such checkpoint")])
def test_demo_with_an_unknown_start_fails_in_one_line_and_writes_nothing(tmp_path: Path, capsys, weights: str,
                                                                         message: str) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--weights", weights, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and weights in err
    assert not out.exists()
