"""Training engine: a short CPU fit, exact resume, non-finite losses, schedule, sampling, 2-process gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gains.cli import main
from gains.config import load_config
from gains.engine.checkpoint import load_checkpoint
from gains.engine.sampling import IterationBatchSampler
from gains.engine.schedule import TimeBudget, lr_factor
from gains.engine.train import NonFiniteLossError, fit
from gains.errors import InputError
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[2]


def cfg(*extra: str):
    return load_config(None, [*TINY, *extra])


def test_two_iteration_fit_through_the_cli(tmp_path: Path, capsys) -> None:
    code = main(["train", "--set", *[x for kv in TINY for x in ("--set", kv)][1:], "--set", "train.max_iters=2",
                 "--set", "train.eval_period=2", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0
    run = tmp_path / "run"
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    train = [ln for ln in lines if "split" not in ln]
    assert [ln["iter"] for ln in train] == [0, 1]
    for key in ("time", "data_s", "lr", "loss", "loss_mask", "loss_ga", "loss_classifier", "images_per_s",
                "peak_mem_mib"):
        assert key in train[0]
    assert all(ln["data_s"] > 0 and ln["time"] > 0 for ln in train)
    assert any(ln.get("split") == "val" and "segm/AP" in ln for ln in lines)
    assert (run / "last.pt").exists() and (run / "best.pt").exists() and (run / "config.yaml").exists()
    assert os.path.samefile(run / "last.pt", run / "best.pt")  # best at the last iteration: one file, two names
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["iteration"] == 2 and ckpt["variant"] == "gains" and ckpt["config"]["train"]["max_iters"] == 2
    assert "trained 2 iterations" in capsys.readouterr().out


def test_a_bad_gamm_setting_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    code = main(["train", *[x for kv in [*TINY, "gamm.zero_maps=zeros"] for x in ("--set", kv)],
                 "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["gains train: error: unknown zero_maps 'zeros'; expected one of ('ones', 'keep')"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_resume_ends_with_the_same_weights(tmp_path: Path) -> None:
    full = cfg("train.max_iters=4", "train.eval_period=0", "train.checkpoint_period=2")
    fit(full, tmp_path / "a", progress=False)
    fit(cfg("train.max_iters=2", "train.eval_period=0", "train.checkpoint_period=2"), tmp_path / "b", progress=False)
    fit(full, tmp_path / "b", resume=True, progress=False)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["iteration"] == b["iteration"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    la = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    lb = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    losses_a = [json.loads(x)["loss"] for x in la if "loss" in json.loads(x)]
    assert len(losses_a) == 4 and losses_a == [json.loads(x)["loss"] for x in lb if "loss" in json.loads(x)]


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    fit(cfg("train.max_iters=1", "train.eval_period=0"), tmp_path / "r", progress=False)
    with pytest.raises(InputError, match=r"last\.pt: saved with other settings \(model\.variant, train\.lr\)"):
        fit(cfg("train.max_iters=2", "train.eval_period=0", "train.lr=0.5", "model.variant=maskrcnn"), tmp_path / "r",
            resume=True, progress=False)


def test_resume_accepts_other_scoring_settings(tmp_path: Path) -> None:
    fit(cfg("train.max_iters=1", "train.eval_period=0"), tmp_path / "r", progress=False)
    summary = fit(cfg("train.max_iters=1", "train.eval_period=0", "eval.score_thresh=0.3", "eval.max_dets=400"),
                  tmp_path / "r", resume=True, progress=False)
    assert summary["iterations"] == 1
    longer = fit(cfg("train.max_iters=2", "train.eval_period=0", "train.amp=auto"), tmp_path / "r", resume=True,
                 progress=False)  # another precision: a run moved to a CPU with(out) native bf16
    assert longer["iterations"] == 2 and longer["amp"] in ("none", "bf16")


def test_non_finite_loss_names_iteration_and_images(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match=r"iteration 0 .* image ids \[\d+, \d+\]"):
        fit(cfg("train.max_iters=1", "train.eval_period=0", "model.ga_loss_weight=1.0e+300"), tmp_path / "nan",
            progress=False)


def test_lr_schedule_warmup_and_steps() -> None:
    assert lr_factor(0, 10, 0.001, [20, 30], 0.1) == pytest.approx(0.001)
    assert lr_factor(5, 10, 0.001, [20, 30], 0.1) == pytest.approx(0.001 * 0.5 + 0.5)
    assert lr_factor(10, 10, 0.001, [20, 30], 0.1) == 1.0
    assert lr_factor(25, 10, 0.001, [20, 30], 0.1) == pytest.approx(0.1)
    assert lr_factor(30, 10, 0.001, [20, 30], 0.1) == pytest.approx(0.01)


def test_batches_are_a_function_of_the_iteration() -> None:
    whole = list(IterationBatchSampler(7, 2, seed=3, start=0, stop=10))
    tail = list(IterationBatchSampler(7, 2, seed=3, start=6, stop=10))
    assert whole[6:] == tail
    first_epoch = [i for batch in whole[:3] for i, _ in batch] + [whole[3][0][0]]
    assert sorted(first_epoch) == list(range(7))  # one epoch = a permutation
    seeds = [s for batch in whole for _, s in batch]
    assert len(set(seeds)) == len(seeds)
    r0 = [i for b in IterationBatchSampler(6, 1, 0, 0, 3, rank=0, world=2) for i, _ in b]
    r1 = [i for b in IterationBatchSampler(6, 1, 0, 0, 3, rank=1, world=2) for i, _ in b]
    assert sorted(r0 + r1) == list(range(6))  # the ranks share an epoch without overlap


@pytest.mark.dist
@pytest.mark.slow
def test_two_process_gloo_run(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gains",
            "train", *[x for kv in [*TINY, "train.max_iters=2", "train.eval_period=2", "train.batch_size=1"]
                       for x in ("--set", kv)], "--out", str(tmp_path / "ddp"), "--quiet"]
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [json.loads(ln) for ln in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    train = [ln for ln in lines if "split" not in ln]
    assert [ln["iter"] for ln in train] == [0, 1]  # rank 0 alone writes
    assert any(ln.get("split") == "val" for ln in lines)
    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["iteration"] == 2


def test_best_checkpoint_is_the_best_validated_state(tmp_path: Path) -> None:
    run = tmp_path / "r"
    fit(cfg("train.max_iters=2", "train.eval_period=1", "train.checkpoint_period=0", "train.lr=0.05"), run,
        progress=False)
    vals = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if "split" in ln]
    aps = [v["segm/AP"] for v in vals]
    best = load_checkpoint(run / "best.pt")
    assert best["iteration"] == aps.index(max(aps)) + 1 and best["best"] == max(aps)
    assert os.path.samefile(run / "best.pt", run / "last.pt") == (best["iteration"] == 2)


def test_time_budget_schedule_on_a_fake_clock() -> None:
    now = [0.0]
    budget = TimeBudget(1.0, 100, clock=lambda: now[0])  # 60 s, the preset's schedule out of 100 iterations
    factor = lambda: budget.lr_factor(10, 0.001, [70, 90], 0.1)  # noqa: E731
    budget.resume()
    assert factor() == pytest.approx(0.001)
    now[0] = 3.0  # 5% of the budget: half-way through the warm-up (iteration 5 of 10)
    budget.tick()
    assert budget.virtual_iteration() == 5 and factor() == pytest.approx(0.001 * 0.5 + 0.5)
    now[0] = 30.0
    budget.pause()
    now[0] = 500.0  # validation while paused does not count
    assert budget.elapsed == 30.0 and factor() == 1.0
    budget.resume()
    now[0] = 515.0  # 30 + 15 s = 75% of the budget: past the first decay
    budget.tick()
    assert factor() == pytest.approx(0.1) and not budget.exhausted()
    now[0] = 531.0
    budget.tick()
    assert factor() == pytest.approx(0.01) and budget.exhausted() and budget.elapsed == 61.0
    resumed = TimeBudget(1.0, 100, elapsed=budget.elapsed, clock=lambda: now[0])
    assert resumed.exhausted() and resumed.virtual_iteration() == 99
    with pytest.raises(ValueError, match="must be positive"):
        TimeBudget(0, 100)


def counting_clock():
    """A clock that advances one second per reading: each iteration costs 1 s of budget."""
    ticks = iter(range(10**6))
    return lambda: float(next(ticks))


def test_budgeted_run_stops_on_time_with_a_decayed_lr_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "b"
    base = ["train.max_iters=30", "train.warmup_iters=10", "train.steps=[20]", "train.eval_period=0",
            "train.checkpoint_period=0"]
    summary = fit(cfg(*base, "train.max_minutes=0.05"), run, progress=False, clock=counting_clock())  # 3 s
    assert summary["iterations"] == 3 and summary["stop_reason"] == "max_minutes"
    train = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if "split" not in ln]
    lrs = [ln["lr"] / 0.01 for ln in train]  # base lr of TINY
    assert lrs == pytest.approx([0.001, 1.0, 0.1])  # warm-up start, full LR at 1/3, decayed at 2/3 of the budget
    assert [ln["elapsed_s"] for ln in train] == [1.0, 2.0, 3.0]
    stopped = json.loads((run / "train_summary.json").read_text())
    assert stopped == {"iterations": 3, "stop_reason": "max_minutes", "elapsed_s": 3.0, "amp": "none",
                       "threads": torch.get_num_threads(), "max_minutes": 0.05, "max_iters": 30}
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["iteration"] == 3 and ckpt["elapsed_s"] == 3.0
    again = fit(cfg(*base, "train.max_minutes=0.05"), run, resume=True, progress=False, clock=counting_clock())
    assert again["iterations"] == 3 and again["stop_reason"] == "max_minutes"  # nothing left to do
    longer = fit(cfg(*base, "train.max_minutes=0.0833333333"), run, resume=True, progress=False,
                 clock=counting_clock())  # 5 s: two more iterations
    assert longer["iterations"] == 5 and load_checkpoint(run / "last.pt")["elapsed_s"] == pytest.approx(5.0)
    lines = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    assert [ln["iter"] for ln in lines if "split" not in ln] == [0, 1, 2, 3, 4]
