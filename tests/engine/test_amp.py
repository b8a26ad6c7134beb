"""``train.amp``: "auto" picks bf16 only where the CPU computes it natively, bad values fail before anything is
written, and a run records the mode it used."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from gains.cli import main
from gains.config import load_config
from gains.engine import step
from gains.engine.step import resolve_amp
from gains.errors import InputError
from gains.presets import preset_names
from tests.conftest import TINY

CPU = torch.device("cpu")


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "none")])
def test_auto_on_the_cpu_follows_native_bf16(monkeypatch, native: bool, expected: str) -> None:
    monkeypatch.setattr(step, "native_bf16_cpu", lambda: native)
    assert resolve_amp("auto", CPU) == expected


@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_explicit_modes_are_kept_on_any_cpu(monkeypatch, amp: str) -> None:
    for native in (True, False):
        monkeypatch.setattr(step, "native_bf16_cpu", lambda native=native: native)
        assert resolve_amp(amp, CPU) == amp


def test_explicit_bf16_without_native_bf16_warns(monkeypatch, caplog) -> None:
    monkeypatch.setattr(step, "native_bf16_cpu", lambda: False)
    with caplog.at_level(logging.WARNING, logger="gains.train"):
        resolve_amp("bf16", CPU)
    assert any("train.amp=auto picks fp32" in r.getMessage() for r in caplog.records)
    caplog.clear()
    monkeypatch.setattr(step, "native_bf16_cpu", lambda: True)
    with caplog.at_level(logging.WARNING, logger="gains.train"):
        resolve_amp("bf16", CPU)
    assert not caplog.records


@pytest.mark.parametrize(("amp", "message"), [("bf32", "train.amp: 'bf32' is not one of auto, none, bf16, fp16"),
                                              ("fp16", "train.amp=fp16 needs CUDA; use bf16 or auto on the CPU")])
def test_bad_modes_are_refused(amp: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        resolve_amp(amp, CPU)
    assert str(err.value) == message


def test_a_bad_mode_through_the_cli_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    code = main(["train", *[x for kv in [*TINY, "train.amp=bf32"] for x in ("--set", kv)],
                 "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["gains train: error: train.amp: 'bf32' is not one of auto, none, bf16, fp16"]
    assert not (tmp_path / "run").exists()


def test_a_run_records_the_mode_auto_resolved_to(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(step, "native_bf16_cpu", lambda: False)
    args = [*TINY, "train.amp=auto", "train.max_iters=1", "train.eval_period=0", "train.checkpoint_period=0"]
    assert main(["train", *[x for kv in args for x in ("--set", kv)], "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert json.loads((tmp_path / "run" / "train_summary.json").read_text())["amp"] == "none"
    assert load_config(str(tmp_path / "run" / "config.yaml")).train.amp == "auto"  # the setting itself is kept


def test_every_cpu_preset_lets_the_machine_choose() -> None:
    cpu = [name for name in preset_names() if name.endswith("_cpu")]
    assert cpu and all(load_config(name).train.amp == "auto" for name in cpu)
