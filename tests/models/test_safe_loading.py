"""No weights file runs code: crafted ``.pkl``, ``.pt``, ``.pth``, legacy and run-folder checkpoints are refused
in one line, and the payload never executes (issue 36, item 1)."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY


class _Payload:
    """Pickles as a call of ``exec`` that writes ``marker``: what a hostile weights file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def _gains(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gains", *args], capture_output=True, text=True, check=False,
                          timeout=300)


def _evil_file(path: Path, marker: Path) -> Path:
    """Write a hostile weights file at ``path`` in the format its suffix names."""
    payload = {"model": {"conv1_w": _Payload(marker)}}
    if path.suffix == ".pkl":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    elif path.name.startswith("legacy"):
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(payload, path)
    return path


@pytest.mark.parametrize("name", ["evil.pkl", "evil.pt", "evil.pth", "legacy.pt"])
def test_hostile_weights_never_run_through_gains_train(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    weights = _evil_file(tmp_path / name, marker)
    sets = [*TINY, "train.max_iters=1", "train.eval_period=0", f"model.weights={weights}"]
    res = _gains("train", *[x for kv in sets for x in ("--set", kv)], "--out", str(tmp_path / "run"), "--quiet")
    assert not marker.exists(), "the weights file ran code"
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("gains train: error: ") and str(weights) in lines[-1]
    assert "Traceback" not in res.stderr


def test_hostile_run_folder_checkpoint_never_runs(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    marker = tmp_path / "ran.txt"
    for ckpt in run.glob("*.pt"):
        _evil_file(ckpt, marker)
    image = tmp_path / "img.png"
    from PIL import Image

    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(image)
    res = _gains("predict", str(run), str(image), "--out", str(tmp_path / "pred"), "--quiet")
    assert not marker.exists(), "the checkpoint ran code"
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "pred").exists()


def test_pkl_reader_refuses_every_global_but_numpy_arrays(tmp_path: Path) -> None:
    from gains.errors import InputError
    from gains.models.weights import read_detectron2_pkl

    marker = tmp_path / "ran.txt"
    for payload in ({"model": {"conv1_w": _Payload(marker)}}, {"model": {"conv1_w": np.load}},
                    {"model": {"conv1_w": np.array([_Payload(marker)], dtype=object)}}):
        path = tmp_path / "x.pkl"
        path.write_bytes(pickle.dumps(payload))
        with pytest.raises(InputError, match=r"x\.pkl: (cannot read pickle \(refused to load|conv1_w)"):
            read_detectron2_pkl(path)
        assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pkl_reader_reads_numpy_weights_of_every_protocol(protocol: int, tmp_path: Path) -> None:
    from collections import OrderedDict

    from gains.models.weights import read_detectron2_pkl

    blobs = OrderedDict(conv1_w=np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3),
                        res_conv1_bn_s=np.ones(1, dtype=np.float64), res_conv1_bn_b=np.float32(0.5))
    path = tmp_path / "R.pkl"
    path.write_bytes(pickle.dumps({"model": blobs, "__author__": "test"}, protocol=protocol))
    state = read_detectron2_pkl(path)
    assert torch.equal(state["conv1.weight"], torch.arange(6, dtype=torch.float32).reshape(1, 1, 2, 3))
    assert float(state["bn1.bias"]) == 0.5 and torch.equal(state["bn1.running_var"], torch.ones(1))
