"""The gains command: subcommands work as the README shows; user mistakes give one line and exit 2."""

from __future__ import annotations

import argparse
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import gains.cli
from gains.cli import build_parser, main
from gains.gamm import GammStore


def test_gamm_cli_writes_store_export_and_previews(small_coco: Path, tmp_path: Path, capsys) -> None:
    code = main(["gamm", str(small_coco), "--images", str(small_coco.parent / "images"), "--variant", "isbi",
                 "--out", str(tmp_path / "store"), "--export-npy", str(tmp_path / "npy"), "--preview", "2",
                 "--quiet", "--window-size", "6"])
    assert code == 0
    out = capsys.readouterr().out
    assert "6 GA maps of 2 images" in out
    store = GammStore(tmp_path / "store")
    assert store.manifest["params"]["window_size"] == 6 and store.manifest["params"]["ga_factor"] == 0.5
    assert sorted(p.name for p in (tmp_path / "npy").glob("*.npy")) == [f"{i}.npy" for i in range(1, 7)]
    previews = sorted((tmp_path / "store" / "preview").glob("*.png"))
    assert [p.name for p in previews] == ["1.png", "2.png"]
    from PIL import Image

    with Image.open(previews[0]) as im:
        assert im.size[0] > 600 and np.asarray(im).std() > 10  # a real figure, not a blank canvas


def test_gamm_cli_bad_input_one_line_exit_2(small_coco: Path, tmp_path: Path, capsys) -> None:
    doc = json.loads(small_coco.read_text())
    doc["annotations"][2]["category_id"] = 42
    small_coco.write_text(json.dumps(doc))
    code = main(["gamm", str(small_coco), "--images", str(small_coco.parent / "images"), "--variant", "nuclei",
                 "--out", str(tmp_path / "store"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == f"gains gamm: error: {small_coco}: annotation 3: unknown category_id 42"
    assert not (tmp_path / "store").exists()


def test_synth_cli_and_python_m(tmp_path: Path) -> None:
    out = tmp_path / "touch"
    res = subprocess.run([sys.executable, "-m", "gains", "synth", "touch", "--n", "3", "--size", "96",
                          "--out", str(out)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    doc = json.loads((out / "annotations.json").read_text())
    assert len(doc["images"]) == 3 and len(doc["annotations"]) > 3
    res = subprocess.run([sys.executable, "-m", "gains", "synth", "touch", "--n", "0", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "n >= 1" in res.stderr


def test_each_cli_module_adds_the_subcommand_named_like_it() -> None:
    """gains/cli/ is one module per subcommand, named like it ("_" for "-"), and ``gains`` lists them all."""
    names = [command.__name__.rsplit(".", 1)[1] for command in gains.cli.COMMANDS]
    assert {m.name for m in pkgutil.iter_modules(gains.cli.__path__)} == {*names, "args"}
    for name, command in zip(names, gains.cli.COMMANDS, strict=True):
        sub = argparse.ArgumentParser().add_subparsers()
        command.add(sub)
        assert list(sub.choices) == [name.replace("_", "-")], name
    (root,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(root.choices) == [name.replace("_", "-") for name in names]
