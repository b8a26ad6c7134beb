"""Every expected failure of the ``gains`` command is one line ``gains CMD: error: ...``, exit 2, nothing written.

Bad numbers are refused where they are parsed (flags by argparse, config values by ``gains.config``), file system
refusals and exhausted resources are caught by ``gains.cli.main`` (issue 36, items 6 and 8).
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gains.cli import main
from gains.cli import score as score_command
from gains.config import load_config
from gains.errors import InputError
from gains.gamm import GammParams

from .conftest import TINY


def one_line(capsys) -> str:
    """The single line written to stderr (fails when there are more or none)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def sets(*pairs: str) -> list[str]:
    return [x for kv in pairs for x in ("--set", kv)]


# numbers refused where argparse parses them: (argv, flag, what the line says)
BAD_FLAGS = [
    (["gamm", "a.json", "--images", "i", "--variant", "isbi", "--window-size", "0"], "--window-size", "integer >= 2"),
    (["gamm", "a.json", "--images", "i", "--variant", "isbi", "--ga-factor", "nan"], "--ga-factor", "finite"),
    (["gamm", "a.json", "--images", "i", "--variant", "isbi", "--overlap-hl", "inf"], "--overlap-hl", "finite"),
    (["gamm", "a.json", "--images", "i", "--variant", "isbi", "--workers", "0"], "--workers", ">= 1"),
    (["gamm", "a.json", "--images", "i", "--variant", "isbi", "--preview", "-1"], "--preview", ">= 0"),
    (["predict", "nuclei", "x.png", "--tile", "-5"], "--tile", "0 or an integer >= 16"),
    (["predict", "nuclei", "x.png", "--overlap", "-10"], "--overlap", ">= 0"),
    (["predict", "nuclei", "x.png", "--scale", "inf"], "--scale", "> 0"),
    (["predict", "nuclei", "x.png", "--scale", "0"], "--scale", "> 0"),
    (["predict", "nuclei", "x.png", "--scale", "-1"], "--scale", "> 0"),
    (["predict", "nuclei", "x.png", "--object-size", "nan"], "--object-size", "> 0"),
    (["predict", "nuclei", "x.png", "--score-thresh", "nan"], "--score-thresh", "[0, 1]"),
    (["predict", "nuclei", "x.png", "--score-thresh", "1.5"], "--score-thresh", "[0, 1]"),
    (["predict", "nuclei", "x.png", "--max-input-gib", "0"], "--max-input-gib", "> 0"),
    (["eval", "nuclei", "--data", "d", "--batch-size", "0"], "--batch-size", ">= 1"),
    (["eval", "nuclei", "--data", "d", "--max-dets", "0"], "--max-dets", ">= 1"),
    (["score", "gt.json", "res.json", "--score-thresh", "nan"], "--score-thresh", "[0, 1]"),
    (["score", "gt.json", "res.json", "--max-dets", "0"], "--max-dets", ">= 1"),
    (["score", "gt.json", "res.json", "--contact-radius", "-1"], "--contact-radius", ">= 0"),
    (["demo", "--minutes", "-1"], "--minutes", "> 0"),
    (["demo", "--minutes", "nan"], "--minutes", "> 0"),
    (["demo", "--minutes", "inf"], "--minutes", "> 0"),
    (["demo", "--size", "0"], "--size", ">= 1"),
    (["report", "run", "--images", "-1"], "--images", ">= 0"),
    (["split", "d", "--seed", "-1"], "--seed", ">= 0"),
    (["convert", "dsb2018", "root", "--workers", "0"], "--workers", ">= 1"),
    (["export-model", "nuclei", "--to", "onnx", "--opset", "0"], "--opset", ">= 1"),
    (["predict", "nuclei", "x.png", "--device", "cuda:7"], "--device", "this machine has cpu"),
    (["eval", "nuclei", "--data", "d", "--device", "tpu"], "--device", "expected auto, cpu, cuda or cuda:i"),
]


@pytest.mark.parametrize(("argv", "flag", "text"), BAD_FLAGS, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in BAD_FLAGS])
def test_bad_numbers_are_one_usage_line(tmp_path: Path, capsys, argv: list[str], flag: str, text: str) -> None:
    out = tmp_path / "out"
    needs_out = argv[0] not in ("split", "report")
    code = main([*argv, *(["--out", str(out)] if needs_out else [])])
    line = one_line(capsys)
    assert code == 2
    assert line.startswith(f"gains {' '.join(argv[:2]) if argv[0] == 'convert' else argv[0]}: error: argument "
                           f"{flag}: "), line
    assert text in line and "Traceback" not in line
    assert not out.exists()


def test_a_missing_option_is_one_line_too(capsys) -> None:
    assert main(["gamm", "a.json"]) == 2
    assert one_line(capsys).startswith("gains gamm: error: the following arguments are required: --images")


def test_help_and_version_still_exit_0(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("gains ")


# config values refused where the config is parsed, before the run folder exists
BAD_SETTINGS = [
    ("train.max_iters=-5", "train.max_iters: must be >= 1, got -5"),
    ("train.batch_size=0", "train.batch_size: must be >= 1, got 0"),
    ("train.lr=.nan", "train.lr: must be a finite number, got nan"),
    ("train.lr=.inf", "train.lr: must be a finite number, got inf"),
    ("train.lr=-0.1", "train.lr: must be > 0, got -0.1"),
    ("train.eval_period=-1", "train.eval_period: must be >= 0, got -1"),
    ("train.checkpoint_period=-1", "train.checkpoint_period: must be >= 0, got -1"),
    ("train.max_minutes=-1.0", "train.max_minutes: must be > 0, got -1.0"),
    ("train.max_minutes=.nan", "train.max_minutes: must be a finite number, got nan"),
    ("train.steps=[10, -3]", "train.steps[1]: must be >= 0, got -3"),
    ("model.detections_per_img=-1", "model.detections_per_img: must be >= 1, got -1"),
    ("model.rpn_post_nms_top_n_train=0", "model.rpn_post_nms_top_n_train: must be >= 1, got 0"),
    ("model.min_size_train=[0]", "model.min_size_train[0]: must be >= 1, got 0"),
    ("model.box_score_thresh=2.0", "model.box_score_thresh: must be in [0, 1], got 2.0"),
    ("model.trainable_layers=6", "model.trainable_layers: must be in [0, 5], got 6"),
    ("data.hflip=-0.5", "data.hflip: must be in [0, 1], got -0.5"),
    ("data.synthetic_train=0", "data.synthetic_train: must be >= 1, got 0"),
    ("data.synthetic_size=8", "data.synthetic_size: must be >= 32, got 8"),
    ("eval.score_thresh=.nan", "eval.score_thresh: must be a finite number, got nan"),
    ("gamm.ga_factor=.inf", "gamm.ga_factor: must be a finite number, got inf"),
    ("gamm.window_size=1", "window_size must be an integer >= 2, got 1"),
    ("train.device=cuda:7", "train.device 'cuda:7': "),
    ("train.steps=[1,", "--set 'train.steps=[1,': not a YAML value ("),
]


@pytest.mark.parametrize(("setting", "message"), BAD_SETTINGS, ids=[s for s, _ in BAD_SETTINGS])
def test_bad_settings_are_one_line_before_the_run_folder(tmp_path: Path, capsys, setting: str, message: str) -> None:
    run = tmp_path / "run"
    assert main(["train", *sets(*TINY, "train.max_iters=1", setting), "--out", str(run), "--quiet"]) == 2
    assert one_line(capsys).startswith(f"gains train: error: {message}")
    assert not run.exists()


def test_a_config_file_with_a_yaml_error_is_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1,\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "run")]) == 2
    assert one_line(capsys).startswith(f"gains train: error: {bad}: cannot read config (")
    assert not (tmp_path / "run").exists()


def test_meaningful_zeros_and_the_shipped_configs_stay_valid() -> None:
    cfg = load_config(None, ["train.eval_period=0", "train.checkpoint_period=0", "train.clip_grad_norm=0.0",
                             "train.warmup_iters=0", "data.hflip=0.0", "model.trainable_layers=0"])
    assert cfg.train.eval_period == 0 and cfg.model.trainable_layers == 0
    for path in sorted(Path(__file__).parents[1].joinpath("configs").glob("*.yaml")):
        load_config(path)


@pytest.mark.parametrize("bad", [{"ga_factor": float("inf")}, {"ga_factor": float("nan")},
                                 {"overlap_hl": float("inf")}, {"window_size": float("inf")}])
def test_the_library_refuses_non_finite_gamm_parameters(bad: dict) -> None:
    with pytest.raises(InputError, match="must be"):
        GammParams.for_variant("isbi", **bad)


# checks in the command

def _png(folder: Path, name: str = "a.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / name)
    return folder / name


def test_overlap_must_be_smaller_than_the_tile(tmp_path: Path, capsys) -> None:
    image = _png(tmp_path / "in")
    assert main(["predict", "nuclei", str(image), "--tile", "256", "--overlap", "256", "--out",
                 str(tmp_path / "out")]) == 2
    assert one_line(capsys) == "gains predict: error: --overlap 256 must be smaller than --tile 256"
    assert not (tmp_path / "out").exists()


def test_a_plane_index_for_images_without_that_axis(tmp_path: Path, capsys) -> None:
    a, b = _png(tmp_path / "in"), _png(tmp_path / "in", "b.png")
    assert main(["predict", "nuclei", str(a), str(b), "--z", "5", "--out", str(tmp_path / "out")]) == 2
    assert one_line(capsys) == (f"gains predict: error: {a} (and 1 other input): --z 5 but no input has a Z axis; "
                                "leave --z out")
    assert not (tmp_path / "out").exists()


def test_an_onnx_opset_the_exporter_lacks(tmp_path: Path, capsys) -> None:
    assert main(["export-model", "nuclei", "--to", "onnx", "--opset", "99", "--out", str(tmp_path / "m.onnx")]) == 2
    assert one_line(capsys) == "gains export-model: error: --opset 99: the ONNX export needs an opset from 11 to 20"
    assert list(tmp_path.iterdir()) == []


def test_split_ratios_must_be_finite(small_coco: Path, capsys) -> None:
    assert main(["split", str(small_coco.parent), "--ratios", "nan:1:1"]) == 2
    assert "ratios must be three finite numbers >= 0" in one_line(capsys)
    assert not (small_coco.parent / "train.json").exists()


# a dataset without images

@pytest.fixture
def no_images(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    (folder / "images").mkdir(parents=True)
    path = folder / "annotations.json"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "cell"}]}))
    return path


@pytest.mark.parametrize(("argv", "message"), [
    (["gamm", "{ann}", "--images", "{images}", "--variant", "isbi", "--out", "{out}", "--quiet"], "nothing to compute"),
    (["split", "{folder}"], "nothing to split"),
    (["eval", "nuclei", "--data", "{folder}", "--split", "all", "--device", "cpu", "--out", "{out}"],
     "nothing to evaluate"),
])
def test_a_dataset_without_images_is_refused(no_images: Path, tmp_path: Path, capsys, argv: list[str],
                                             message: str) -> None:
    names = {"ann": no_images, "images": no_images.parent / "images", "folder": no_images.parent,
             "out": tmp_path / "out"}
    assert main([a.format(**names) for a in argv]) == 2
    assert one_line(capsys).endswith(f"{no_images}: no images, {message}")
    assert sorted(p.name for p in no_images.parent.iterdir()) == ["annotations.json", "images"]
    assert not (tmp_path / "out").exists()


def test_stats_of_a_dataset_without_images_reports_zeros(no_images: Path, capsys) -> None:
    assert main(["stats", str(no_images.parent)]) == 0


# file system refusals and exhausted resources, caught by main

def test_a_file_where_a_folder_is_needed(small_coco: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main(["stats", str(small_coco.parent), "--json", str(blocker / "stats.json")]) == 2
    assert one_line(capsys) == f"gains stats: error: {blocker}: a file is in the way where a folder is needed"
    assert main(["stats", str(small_coco.parent), "--json", str(blocker / "sub" / "stats.json")]) == 2
    assert one_line(capsys) == f"gains stats: error: {blocker / 'sub'}: Not a directory (a part of the path is a file)"
    assert blocker.read_text() == "x"


def test_a_full_disk_is_one_line_and_leaves_nothing(small_coco: Path, monkeypatch, capsys) -> None:
    import gains.data.split as split

    real = split.atomic_write

    def full_disk(path, write):
        def fail(fh):
            write(fh)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, fail)

    monkeypatch.setattr(split, "atomic_write", full_disk)
    assert main(["split", str(small_coco.parent)]) == 2
    assert one_line(capsys) == "gains split: error: No space left on device; free some space or write elsewhere"
    assert sorted(p.name for p in small_coco.parent.iterdir()) == ["annotations.json", "images"]


def test_a_nul_byte_in_a_file_name(small_coco: Path, tmp_path: Path, capsys) -> None:
    doc = json.loads(small_coco.read_text())
    doc["images"][0]["file_name"] = "a\x00.png"
    small_coco.write_text(json.dumps(doc))
    assert main(["gamm", str(small_coco), "--images", str(small_coco.parent / "images"), "--variant", "isbi",
                 "--out", str(tmp_path / "store"), "--quiet"]) == 2
    assert one_line(capsys) == (f"gains gamm: error: {small_coco}: image 1: file_name 'a\\x00.png' contains a NUL "
                                "byte")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(("exc", "text"), [
    (MemoryError(), "out of memory; use smaller images, --scale, --tile or --batch-size, or fewer --workers"),
    (RecursionError("maximum recursion depth exceeded"),
     "an input is nested too deeply to read (maximum recursion depth exceeded)"),
    (OverflowError("int too large to convert"), "a number is out of range (int too large to convert)"),
    (ValueError("embedded null byte"), "a file name contains a NUL byte"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/out"), "/ro/out: Permission denied"),
    (OSError(errno.ENAMETOOLONG, "File name too long", "x" * 300), "x" * 300 + ": File name too long"),
    (OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b"), "a -> b: Invalid cross-device link"),
    (InputError("first line\n  second line"), "first line second line"),
])
def test_expected_failures_are_one_line(monkeypatch, capsys, exc: Exception, text: str) -> None:
    def fail(args):
        raise exc

    monkeypatch.setattr(score_command, "run", fail)
    assert main(["score", "gt.json", "res.json", "--out", "m.json"]) == 2
    assert one_line(capsys) == f"gains score: error: {text}"


def test_yaml_errors_from_anywhere_are_one_line(monkeypatch, capsys) -> None:
    import yaml

    def fail(args):
        yaml.safe_load("a: [1,")

    monkeypatch.setattr(score_command, "run", fail)
    assert main(["score", "gt.json", "res.json", "--out", "m.json"]) == 2
    assert one_line(capsys) == ("gains score: error: not valid YAML (expected the node content, but found "
                                "'<stream end>' at line 1, column 7)")


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    def fail(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(score_command, "run", fail)
    with pytest.raises(TypeError):
        main(["score", "gt.json", "res.json", "--out", "m.json"])


# through a real process: what the user sees

@pytest.mark.parametrize(("argv", "line"), [
    (["predict", "nuclei", "x.png", "--tile", "-5"],
     "gains predict: error: argument --tile: must be 0 or an integer >= 16, got '-5' (see gains predict --help)"),
    (["train", "--set", "train.max_iters=-5"], "gains train: error: train.max_iters: must be >= 1, got -5"),
    (["demo", "--minutes", "-1"],
     "gains demo: error: argument --minutes: must be a finite number > 0, got '-1' (see gains demo --help)"),
])
def test_no_traceback_reaches_the_user(tmp_path: Path, argv: list[str], line: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "gains", *argv, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [line]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("verbose", [False, True])
def test_a_file_as_the_output_folder_through_a_process(small_coco: Path, tmp_path: Path, verbose: bool) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "gains", *(["-v"] if verbose else []), "stats", str(small_coco.parent),
                           "--json", str(blocker / "s.json")], capture_output=True, text=True, check=False)
    err = proc.stderr.splitlines()
    assert proc.returncode == 2
    assert err[-1] == f"gains stats: error: {blocker}: a file is in the way where a folder is needed"
    assert ("Traceback" in proc.stderr) == verbose  # --verbose logs it first, for developers
    assert len(err) == 1 or verbose
    assert blocker.read_text() == "x"
