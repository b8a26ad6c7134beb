"""``gains predict`` under torchrun: the image split, and a 2-process gloo run against a single-process one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from pycocotools import mask as mask_utils

from gains.cli import main
from gains.inference.predict_run import share

ROOT = Path(__file__).resolve().parents[2]
FORMATS = "coco,labels,overlay,ga,imagej,geojson"


def test_share_is_disjoint_covering_balanced_and_deterministic() -> None:
    for n in range(12):
        for world in range(1, 5):
            shares = [share(n, r, world) for r in range(world)]
            flat = sorted(k for s in shares for k in s)
            assert flat == list(range(n))  # every image once: disjoint and covering
            assert max(map(len, shares)) - min(map(len, shares)) <= 1
            assert all(s == sorted(s) for s in shares) and shares == [share(n, r, world) for r in range(world)]
    assert share(5, 1, 2) == [1, 3]
    with pytest.raises(ValueError, match="rank 2 is not in a world of 2"):
        share(5, 2, 2)


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """``gains ARGS`` in two CPU processes (gloo), importing this checkout's source."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gains", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)


def decoded(entry: dict) -> np.ndarray:
    rle = entry["segmentation"]
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


@pytest.mark.dist
@pytest.mark.slow
def test_two_processes_write_what_one_process_writes(tiny_run: Path, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(3)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "b", "d"):  # 3 single images and a 3-plane stack: 6 images, the stack's planes on both ranks
        Image.fromarray((rng.random((64, 72)) * 255).astype(np.uint8)).save(inputs / f"{name}.png")
    tifffile.imwrite(inputs / "c.tif", (rng.random((3, 64, 64)) * 4000).astype(np.uint16), photometric="minisblack",
                     metadata={"axes": "ZYX"})
    common = ["--format", FORMATS, "--score-thresh", "0.0", "--device", "cpu", "--quiet"]
    assert main(["predict", str(tiny_run), str(inputs), "--out", str(tmp_path / "one"), *common]) == 0
    capsys.readouterr()
    res = torchrun("predict", str(tiny_run), str(inputs), "--out", str(tmp_path / "two"), *common)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("predicting 6 images on 2 processes") == 1  # rank 0 alone says how it split
    assert res.stdout.count(" images -> ") == 1  # and reports
    one, two = tmp_path / "one", tmp_path / "two"
    names = sorted(p.name for p in one.iterdir())
    assert sorted(p.name for p in two.iterdir()) == names  # every file once, no temporary files left
    assert {"c_z2_overlay.png", "d_rois.zip", "a.geojson", "results.json", "images.json"} <= set(names)
    assert json.loads((two / "images.json").read_text()) == json.loads((one / "images.json").read_text())
    ref, got = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert len(ref) == len(got) > 0
    assert [r["image_id"] for r in got] == [r["image_id"] for r in ref] and {r["image_id"] for r in ref} == set(
        range(1, 7))
    for r, g in zip(ref, got, strict=True):
        assert g["category_id"] == r["category_id"] and g["score"] == pytest.approx(r["score"], abs=1e-4)
        assert g["bbox"] == pytest.approx(r["bbox"], abs=1.0)
        a, b = decoded(r), decoded(g)
        assert np.count_nonzero(a & b) >= 0.98 * np.count_nonzero(a | b)
    for name in names:
        if name.endswith("_labels.tif") or name.endswith("_ga.tif"):
            np.testing.assert_allclose(tifffile.imread(two / name), tifffile.imread(one / name), atol=1e-3)


@pytest.mark.dist
@pytest.mark.slow
def test_a_failure_on_one_process_stops_both_and_leaves_no_folder(tiny_run: Path, tmp_path: Path) -> None:
    stack = np.ones((2, 32, 32), np.float32)
    stack[1, 3, 3] = np.nan  # plane z1 = image 2, on rank 1; rank 0 writes images 1 and 3 before it hears
    tifffile.imwrite(tmp_path / "nan.tif", stack, metadata={"axes": "ZYX"})
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "z.png")
    res = torchrun("predict", str(tiny_run), str(tmp_path / "nan.tif"), str(tmp_path / "z.png"), "--out",
                   str(tmp_path / "out"), "--device", "cpu", "--quiet")
    assert res.returncode != 0
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("gains predict: error:")]
    # every process raises the same line (torchrun may stop rank 0 before it prints, once rank 1 has exited)
    assert errors and all("nan.tif z1: 1 non-finite pixel" in ln for ln in errors), res.stderr[-3000:]
    assert not (tmp_path / "out").exists()
