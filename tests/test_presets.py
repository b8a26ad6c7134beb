"""Presets are package data: names resolve everywhere, paths still work, `gains presets` lists and prints them."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from gains.cli import main
from gains.config import Config, load_config
from gains.errors import InputError
from gains.presets import preset_names, preset_purpose, preset_text, resolve_config

ROOT = Path(__file__).resolve().parents[1]


def test_presets_are_package_data_not_checkout_files() -> None:
    folder = files("gains.presets")
    shipped = sorted(f.name for f in folder.iterdir() if f.name.endswith(".yaml"))
    assert shipped == [f"{n}.yaml" for n in preset_names()]
    assert "isbi2014_cpu" in preset_names() and "synthetic_overlap_cpu" in preset_names()
    assert "zoo_nuclei_cpu" not in preset_names()  # a benchmark's config, not a user preset
    assert not (ROOT / "configs" / "isbi2014_cpu.yaml").exists()
    assert preset_text("isbi2014_cpu") == folder.joinpath("isbi2014_cpu.yaml").read_text(encoding="utf-8")


def test_name_and_path_resolve_to_the_same_config(tmp_path: Path) -> None:
    by_name = load_config("synthetic_touch_cpu", ["train.max_iters=7"])
    copy = tmp_path / "mine.yaml"
    copy.write_text(preset_text("synthetic_touch_cpu"))
    assert load_config(copy, ["train.max_iters=7"]) == by_name == load_config(str(copy), ["train.max_iters=7"])
    assert by_name.data.synthetic == "touch" and by_name.train.max_iters == 7
    assert resolve_config("synthetic_touch_cpu")[0] == "preset synthetic_touch_cpu"


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(InputError) as info:
        load_config("isbi2041_cpu")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("unknown preset 'isbi2041_cpu'; choose from chromosome, ")
    assert all(name in msg for name in preset_names()) and "path of a YAML file" in msg


def test_missing_path_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^configs/isbi2014_cpu.yaml: config file not found; the presets ship "
                                         r"with gains now: pass --config isbi2014_cpu$"):
        load_config("configs/isbi2014_cpu.yaml")
    with pytest.raises(InputError, match=r"nope.yaml: config file not found$"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(InputError, match=r"bad.yaml: cannot read config"):
        load_config(bad)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_has_a_purpose_and_differs_from_defaults(name: str) -> None:
    purpose = preset_purpose(name)
    assert len(purpose) > 20 and not purpose.startswith("#")
    assert load_config(name) != Config()


def test_cli_lists_and_show_round_trips(tmp_path: Path, capsys) -> None:
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == preset_names()
    row = next(line for line in lines if line.startswith("isbi2014_cpu "))
    assert row.endswith(preset_purpose("isbi2014_cpu"))
    assert main(["presets", "show", "dsb2018_cluster_cpu"]) == 0
    shown = capsys.readouterr().out
    (tmp_path / "start.yaml").write_text(shown)
    assert load_config(tmp_path / "start.yaml") == load_config("dsb2018_cluster_cpu")
    assert main(["presets", "show", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gains presets: error: unknown preset 'nope'; choose from ")


def test_train_cli_refuses_unknown_preset_and_writes_nothing(tmp_path: Path, capsys) -> None:
    assert main(["train", "--config", "synthetic_overlap", "--set", "train.nope=1", "--out", str(tmp_path / "r")]) == 2
    assert "unknown key" in capsys.readouterr().err
    assert main(["train", "--config", "overlap", "--out", str(tmp_path / "r")]) == 2
    assert "unknown preset 'overlap'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
