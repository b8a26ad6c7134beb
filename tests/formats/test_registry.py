"""The writer registry ``gains.formats.FORMATS``: ``gains predict --format`` and ``gains export --to`` write every
format through it, a new format is one module plus one registry entry, and (where the code before the registry is
at ``GAINS_BASE33_SRC``, default /tmp/base33/src) every file is byte for byte what that code wrote."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gains.cli import main
from gains.formats import FORMATS, names
from gains.formats.result import ImageResult
from tests.conftest import ROOT, disc_polygon, write_coco

BASE_SRC = Path(os.environ.get("GAINS_BASE33_SRC", "/tmp/base33/src"))
PREDICT = ["--score-thresh", "0.0", "--device", "cpu", "--quiet", "--tile", "64", "--overlap", "16"]
NEWER = ("csv", "omezarr")  # formats added after the registry: the code before it has none to compare


def older(command: str) -> list[str]:
    """The formats ``command`` offered before the registry."""
    return [name for name in names(command) if name not in NEWER]


def cells(folder: Path) -> Path:
    """A 96 x 112 noise image (the tiny model finds instances in it at threshold 0), tiled 2 x 2 at tile 64."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((96, 112)) * 255).astype(np.uint8)).save(folder / "cells.png")
    return folder / "cells.png"


def apart(folder: Path) -> Path:
    """A dataset whose instances do not overlap (a label image holds them): two images, three discs."""
    anns = [{"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(20, 20, 9)]},
            {"image_id": 1, "category_id": 2, "segmentation": [disc_polygon(40, 55, 7)]},
            {"image_id": 2, "category_id": 1, "segmentation": [disc_polygon(30, 30, 12)]}]
    return write_coco(folder, [("a.png", 64, 80), ("b.png", 64, 80)], anns).parent


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` a user sees (not gains's hidden owner marker and lock), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def gains(src: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "gains", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_the_commands_offer_todays_formats() -> None:
    assert names("predict") == ["coco", "labels", "overlay", "ga", "imagej", "geojson", "csv", "omezarr"]
    assert names("export") == ["labels", "masks", "imagej", "geojson", "csv"]
    for module in FORMATS.values():
        assert callable(module.write) and module.HELP and set(module.COMMANDS) <= {"predict", "export"}


@pytest.mark.skipif(not (BASE_SRC / "gains").is_dir(), reason=f"{BASE_SRC}: the code before the registry is not there")
def test_every_format_is_byte_for_byte_the_old_one(tiny_run: Path, small_coco: Path, tmp_path: Path) -> None:
    image = cells(tmp_path / "in")
    flat = apart(tmp_path / "flat")
    for label, src in (("before", BASE_SRC), ("now", ROOT / "src")):
        proc = gains(src, "predict", str(tiny_run), str(image), "--out", str(tmp_path / label / "predict"),
                     "--format", ",".join(older("predict")), *PREDICT)
        assert proc.returncode == 0, proc.stderr
        for to in older("export"):
            data = flat if to == "labels" else small_coco.parent
            proc = gains(src, "export", str(data), "--to", to, "--out", str(tmp_path / label / to))
            assert proc.returncode == 0, proc.stderr
        proc = gains(src, "export", str(small_coco.parent), "--to", "labels", "--out", str(tmp_path / label / "x"))
        assert proc.returncode == 2 and "annotations 1 and 2 overlap" in proc.stderr
    before, now = files(tmp_path / "before"), files(tmp_path / "now")
    assert sorted(now) == sorted(before)
    for name in ("predict/results.json", "predict/cells_ga.tif", "predict/cells_rois.zip", "masks/a/masks/4.png",
                 "labels/labels/a.tif", "labels/images/a.png", "geojson/b.geojson", "imagej/a_rois.zip"):
        assert name in now
    assert [n for n in now if now[n] != before[n]] == []


def test_a_new_format_is_one_module_and_one_registry_line(tiny_run: Path, small_coco: Path, tmp_path: Path,
                                                          monkeypatch, capsys) -> None:
    seen: list[ImageResult] = []

    def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
        seen.append(result)
        path = out_dir / f"{stem}.tsv"
        rows = [f"{n}\t{i.category_id}\t{i.mask.area}\t{'' if result.truth else i.score}"
                for n, i in zip(result.numbers, result.instances, strict=True)]
        path.write_text("".join(row + "\n" for row in rows))
        return [path]

    tsv = types.ModuleType("tsv", "Tab-separated instances: number, category, area, score.")
    tsv.COMMANDS, tsv.HELP, tsv.write = ("predict", "export"), "instance table", write
    tsv.collect = lambda result: len(result.instances)
    tsv.finish = lambda out_dir, parts, categories: [(out_dir / "count.txt").write_text(str(sum(parts)))]
    monkeypatch.setitem(FORMATS, "tsv", tsv)

    image = cells(tmp_path / "in")
    assert main(["predict", str(tiny_run), str(image), "--out", str(tmp_path / "p"), "--format", "coco,tsv",
                 *PREDICT]) == 0
    rows = (tmp_path / "p" / "cells.tsv").read_text().splitlines()
    assert len(seen) == 1 and not seen[0].truth and seen[0].pixels is not None and (seen[0].height, seen[0].width) \
        == (96, 112)
    assert rows and len(rows) == int((tmp_path / "p" / "count.txt").read_text()) == len(seen[0].instances)
    assert (tmp_path / "p" / "results.json").is_file()

    seen.clear()
    assert main(["export", str(small_coco.parent), "--to", "tsv", "--out", str(tmp_path / "e")]) == 0
    assert [r.truth for r in seen] == [True, True] and [r.numbers for r in seen] == [[1, 2, 3, 4], [5, 6]]
    assert (tmp_path / "e" / "a.tsv").read_text().splitlines()[3].startswith("4\t2\t")
    assert (tmp_path / "e" / "count.txt").read_text() == "6"
    capsys.readouterr()
    assert "tsv (instance table)" in main_help(["predict", "--help"], capsys)
    assert "tsv (instance table)" in main_help(["export", "--help"], capsys)


def main_help(argv: list[str], capsys) -> str:
    assert main(argv) == 0
    return " ".join(capsys.readouterr().out.split())


def test_unknown_names_are_one_line_listing_the_registry(small_coco: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", str(small_coco.parent), "--to", "coco", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'coco'" in err[0], err
    assert all(f"'{name}'" in err[0] for name in names("export"))
    assert not (tmp_path / "o").exists()
