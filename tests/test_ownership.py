"""Issue 36, items 2, 3, 4 and 7: gains writes only into folders it made, never removes anyone else's, refuses
to restart a training run silently, lets one writer at a time into a store or run, and leaves nothing behind
when it fails (no folder, no empty file, no orphan temporary file)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gains.cli import main
from gains.gamm import pipeline as pipeline_mod
from tests.conftest import TINY, disc_polygon, write_coco

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too, but the lock file: it names its last holder's pid) with the
    sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".gains-lock"}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def gamm_args(ann: Path, out: Path, *extra: str) -> list[str]:
    return ["gamm", str(ann), "--images", str(ann.parent / "images"), "--variant", "isbi", "--quiet",
            "--out", str(out), *extra]


def train_args(out: Path, *extra: str) -> list[str]:
    return ["train", *[x for kv in [*TINY, "train.max_iters=1", "train.eval_period=0"] for x in ("--set", kv)],
            "--out", str(out), "--quiet", *extra]


@pytest.mark.parametrize("target", ["dataset folder", "image folder"])
def test_gamm_out_on_the_dataset_or_its_images_keeps_them(small_coco: Path, capsys, target: str) -> None:
    out = small_coco.parent if target == "dataset folder" else small_coco.parent / "images"
    before = snapshot(small_coco.parent)
    for extra in ([], ["--overwrite"]):
        assert main(gamm_args(small_coco, out, *extra)) == 2
        assert "--out" in one_error_line(capsys)
    assert snapshot(small_coco.parent) == before
    assert not out.with_name(out.name + ".partial").exists()


def test_gamm_refuses_a_folder_it_did_not_make_even_with_overwrite(small_coco: Path, tmp_path: Path,
                                                                   capsys) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(gamm_args(small_coco, mine, "--overwrite")) == 2
    assert "not made by gains" in one_error_line(capsys)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_a_users_own_partial_folder_survives_convert_and_gamm(small_coco: Path, tmp_path: Path, capsys) -> None:
    for name in ("norm", "store"):
        (tmp_path / f"{name}.partial").mkdir()
        (tmp_path / f"{name}.partial" / "mine.txt").write_text("keep me")
    assert main(["convert", "coco", str(small_coco), "--images", str(small_coco.parent / "images"),
                 "--out", str(tmp_path / "norm")]) == 2
    assert "norm.partial" in one_error_line(capsys)
    assert main(gamm_args(small_coco, tmp_path / "store")) == 2
    assert "store.partial" in one_error_line(capsys)
    for name in ("norm", "store"):
        assert (tmp_path / f"{name}.partial" / "mine.txt").read_text() == "keep me"
        assert not (tmp_path / name).exists()


def test_convert_overwrite_into_a_parent_of_the_input_is_refused(tmp_path: Path, capsys) -> None:
    parent = tmp_path / "parent"
    ann = write_coco(parent / "ds", [("a.png", 40, 40)],
                     [{"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(20, 20, 8)]}])
    before = snapshot(parent)
    assert main(["convert", "coco", str(ann), "--images", str(ann.parent / "images"), "--out", str(parent),
                 "--overwrite"]) == 2
    assert "--out" in (line := one_error_line(capsys)) and "contains the input" in line
    assert snapshot(parent) == before and not (tmp_path / "parent.partial").exists()


def test_export_into_the_dataset_folder_is_refused(small_coco: Path, capsys) -> None:
    before = snapshot(small_coco.parent)
    assert main(["export", str(small_coco.parent), "--to", "geojson", "--out", str(small_coco.parent / "qp")]) == 2
    assert "lies inside the input" in one_error_line(capsys)
    assert snapshot(small_coco.parent) == before


def test_train_into_an_existing_run_needs_resume_or_overwrite(tiny_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = snapshot(run)
    assert main(train_args(run)) == 2
    line = one_error_line(capsys)
    assert str(run) in line and "--resume" in line and "--overwrite" in line
    assert snapshot(run) == before
    (run / "tb_notes.txt").write_text("inside the run folder: the run's own")
    assert main(train_args(run, "--overwrite")) == 0  # started again: a fresh run, nothing of the old one left
    assert not (run / "tb_notes.txt").exists()
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [ln["iter"] for ln in lines if "split" not in ln] == [0]


def test_train_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "last.pt").write_bytes(b"my own file")
    assert main(train_args(folder, "--overwrite")) == 2
    assert "not made by gains" in one_error_line(capsys)
    assert [p.name for p in folder.iterdir()] == ["last.pt"] and (folder / "last.pt").read_bytes() == b"my own file"


HOLD = """
import fcntl, os, sys, time
folder = sys.argv[1]
os.makedirs(folder, exist_ok=True)
fd = os.open(os.path.join(folder, ".gains-lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, str(os.getpid()).encode())
print("held", flush=True)
time.sleep(60)
"""


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds ``folder``'s lock (as a running gains writer does) until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_of_a_store_fails_in_one_line(small_coco: Path, tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    holder = hold_lock(tmp_path / "store.partial")
    try:
        assert main(gamm_args(small_coco, store)) == 2
        line = one_error_line(capsys)
        assert f"being written by another gains process (pid {holder.pid})" in line and "store.partial" in line
        assert not store.exists() and (tmp_path / "store.partial").is_dir()
    finally:
        holder.kill()
        holder.wait()
    assert main(gamm_args(small_coco, store)) == 0  # the lock died with its process
    assert (store / "manifest.json").exists()


def test_two_gamm_runs_started_at_once_leave_one_complete_store(tmp_path: Path) -> None:
    """The race of the issue: two real ``gains gamm`` on one ``--out`` at once. Each ends either with the store
    written (or found up to date) or with the one-line lock error; the store holds every map."""
    data = tmp_path / "data"
    gains = [sys.executable, "-m", "gains"]
    subprocess.run([*gains, "synth", "overlap", "--n", "12", "--size", "192", "--out", str(data)], check=True,
                   env=ENV, capture_output=True)
    store = tmp_path / "store"
    args = [*gains, *gamm_args(data / "annotations.json", store)]
    procs = [subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert 0 in [rc for rc, _, _ in results], results
    for rc, _, err in results:
        last = err.strip().splitlines()[-1] if err.strip() else ""
        assert rc == 0 or (rc == 2 and "Traceback" not in err and "another gains process" in last), err
    n_anns = len(json.loads((data / "annotations.json").read_text())["annotations"])
    from gains.gamm import GammStore

    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["complete"] and manifest["n_maps"] == n_anns
    assert len(list((store / "maps").glob("*.npz"))) == 12
    assert GammStore(store).load(1).shape[0] > 0
    assert not (tmp_path / "store.partial").exists()


def test_a_second_trainer_of_a_run_fails_in_one_line(tiny_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = snapshot(run)
    holder = hold_lock(run)
    try:
        assert main(train_args(run, "--resume")) == 2
        assert f"being written by another gains process (pid {holder.pid})" in one_error_line(capsys)
    finally:
        holder.kill()
        holder.wait()
    assert snapshot(run) == before


@pytest.mark.parametrize("setting", ["model.weights=/nonexistent/weights.pt", "model.weights=GARBAGE"])
def test_a_failed_train_leaves_no_run_folder(tmp_path: Path, capsys, setting: str) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    run = tmp_path / "sub" / "run"
    assert main(train_args(run, "--set", setting.replace("GARBAGE", str(garbage)))) == 2
    one_error_line(capsys)
    assert not run.exists()


def test_a_failed_demo_leaves_no_folder(tmp_path: Path, capsys) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--weights", str(garbage), "--size", "64", "--minutes", "0.05",
                 "--quiet"]) == 2
    assert "garbage.pt" in one_error_line(capsys)
    assert not out.exists()


LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))
from gains.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_stats_json_is_written_atomically(small_coco: Path, tmp_path: Path) -> None:
    out = tmp_path / "json" / "stats.json"
    out.parent.mkdir()
    res = subprocess.run([sys.executable, "-c", LIMITED, "stats", str(small_coco.parent), "--json", str(out)],
                         capture_output=True, text=True, env=ENV, timeout=120, check=False)
    assert res.returncode != 0  # the file cannot grow past 16 bytes: a full disk
    assert list(out.parent.iterdir()) == []  # no empty or half-written file, no temporary file


def test_orphan_temporary_files_of_ours_go_on_resume(small_coco: Path, tmp_path: Path, monkeypatch) -> None:
    original = pipeline_mod._process_image

    def interrupted(image):
        if image.id == 2:
            raise KeyboardInterrupt
        return original(image)

    monkeypatch.setattr(pipeline_mod, "_process_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline_mod.run_gamm(small_coco, small_coco.parent / "images", pipeline_mod.GammParams.for_variant("isbi"),
                              out=tmp_path / "store", progress=False)
    monkeypatch.setattr(pipeline_mod, "_process_image", original)
    maps = tmp_path / "store.partial" / "maps"
    orphans = [maps / ".2.npz.k3j9x_q1.tmp", maps / ".2.npz.a8b7c6.gains-tmp"]  # a killed worker's (old, new)
    for f in orphans:
        f.write_bytes(b"")
    (maps / "notes.tmp").write_text("not ours")
    assert main(gamm_args(small_coco, tmp_path / "store")) == 0
    store = tmp_path / "store"
    assert [p.name for p in store.rglob("*tmp")] == ["notes.tmp"]  # our temporary names only
    assert (store / "maps" / "2.npz").exists()


def test_orphan_checkpoint_temporary_file_goes_on_train_resume(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    orphan = run / ".last.pt.q8w7e6r5.gains-tmp"  # what kill -9 during a checkpoint write leaves
    orphan.write_bytes(b"\0" * 1024)
    (run / "my.tmp").write_text("a user's file")
    assert main(train_args(run, "--resume")) == 0
    assert not orphan.exists() and (run / "my.tmp").read_text() == "a user's file"
    assert json.loads((run / "train_summary.json").read_text())["iterations"] == 1


def test_eval_out_keeps_a_users_folder_and_reruns_into_its_own(tiny_run: Path, tmp_path: Path, capsys) -> None:
    data = tiny_run / "data" / "val"
    users = tmp_path / "mine"
    users.mkdir()
    (users / "results.json").write_text("my own results")
    (users / "notes.txt").write_text("mine")
    before = snapshot(users)
    args = ["eval", str(tiny_run), "--data", str(data), "--split", "all", "--device", "cpu", "--out"]
    assert main([*args, str(users)]) == 2
    assert "was not made by gains" in one_error_line(capsys)
    assert snapshot(users) == before
    assert main([*args, str(data / "ev")]) == 2  # inside the data
    assert "lies inside the input" in one_error_line(capsys) and not (data / "ev").exists()
    ours = tmp_path / "ev"
    assert main([*args, str(ours)]) == 0 and main([*args, str(ours)]) == 0  # its own folder: replaced
    assert (ours / "METRICS.json").exists() and (ours / ".gains-owner").exists()
