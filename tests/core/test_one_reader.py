"""One image reader: datasets of channels-first and z-stack TIFFs train, evaluate and predict like PNGs.

A dataset image is one plane of its file (``gains.core.images``): a channels-first TIFF needs no key, a z-stack
names its plane with the image key ``"z"``. Each dataset here is two 96 px synthetic scenes rewritten as uint16
TIFFs; the run trained on it is one iteration of the TINY setup.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from gains.cli import main
from gains.core.coco import checked_image_file, load_coco, read_coco_image
from gains.core.images import image_size, read_image
from gains.core.planes import DATASET_PLANE, dataset_plane, plane_keys
from gains.data.normalise import convert_coco
from gains.data.synth import write_synthetic
from gains.errors import InputError
from tests.conftest import TINY

Z_PLANE = 1  # the plane of each z-stack that holds the scene; the others are noise


def _stack(grey: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """(C, H, W) channels first (C = 2 for the first image, 3 for the second) or a (3, H, W) z-stack."""
    value = grey.astype(np.uint16) * 257
    if kind == "channels":
        n = 2 + seed
        return np.stack([value, 65535 - value, value][:n])
    noise = np.random.default_rng(seed).integers(0, 65535, (3, *grey.shape), dtype=np.uint16)
    noise[Z_PLANE] = value
    return noise


def _tiff_dataset(folder: Path, kind: str) -> Path:
    """A synthetic dataset whose images are uint16 TIFFs of ``kind`` (``channels`` or ``zstack``)."""
    ann = write_synthetic("touch", 2, 96, 7, folder / "png")
    doc = json.loads(ann.read_text())
    (folder / kind / "images").mkdir(parents=True)
    for k, image in enumerate(doc["images"]):
        grey = np.asarray(read_image(ann.parent / "images" / image["file_name"]))
        name = Path(image["file_name"]).with_suffix(".tif").name
        metadata = {"axes": "ZYX"} if kind == "zstack" else None
        tifffile.imwrite(folder / kind / "images" / name, _stack(grey, kind, k), photometric="minisblack",
                         metadata=metadata)
        image["file_name"] = name
        if kind == "zstack":
            image["z"] = Z_PLANE
    out = folder / kind / "annotations.json"
    out.write_text(json.dumps(doc))
    return out


@pytest.fixture(scope="module", params=["channels", "zstack"])
def trained(request, tmp_path_factory) -> tuple[Path, Path]:
    """(annotations.json of a TIFF dataset, a one-iteration run trained on it through ``gains train``)."""
    root = tmp_path_factory.mktemp(request.param)
    ann = _tiff_dataset(root, request.param)
    sets = [kv for kv in TINY if not kv.startswith("data.synthetic")]
    sets += [f"data.train={ann}", f"data.val={ann}", "train.max_iters=1", "train.eval_period=0"]
    assert main(["train", *[x for kv in sets for x in ("--set", kv)], "--out", str(root / "run"), "--quiet"]) == 0
    return ann, root / "run"


def test_a_tiff_dataset_trains(trained: tuple[Path, Path]) -> None:
    _, run = trained
    assert (run / "last.pt").exists()
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [ln["iter"] for ln in lines if "split" not in ln] == [0]


def test_a_tiff_dataset_evaluates(trained: tuple[Path, Path], tmp_path: Path) -> None:
    ann, run = trained
    assert main(["eval", str(run), "--data", str(ann.parent), "--split", "all", "--out", str(tmp_path / "ev"),
                 "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "ev" / "METRICS.json").read_text())
    assert 0.0 <= metrics["segm/AP"] <= 1.0
    rows = (tmp_path / "ev" / "METRICS_per_image.csv").read_text().splitlines()
    assert len(rows) == 1 + 2  # header and the two images


def test_a_tiff_dataset_predicts(trained: tuple[Path, Path], tmp_path: Path) -> None:
    ann, run = trained
    doc = json.loads(ann.read_text())
    files = [str(ann.parent / "images" / image["file_name"]) for image in doc["images"]]
    planes = ["--z", str(Z_PLANE)] if "z" in doc["images"][0] else []
    assert main(["predict", str(run), *files, *planes, "--out", str(tmp_path / "pr"), "--format", "coco",
                 "--device", "cpu"]) == 0
    images = json.loads((tmp_path / "pr" / "images.json").read_text())["images"]
    assert [(i["height"], i["width"]) for i in images] == [(96, 96)] * 2


def test_the_dataset_reads_the_plane_predict_reads(trained: tuple[Path, Path]) -> None:
    """Channels first come out channels last; the z-stack's plane is its "z" key; sizes come from the header."""
    ann, _ = trained
    coco = load_coco(ann)
    for image in coco.images:
        file, height, width = checked_image_file(coco, image, ann.parent / "images")
        pixels = read_coco_image(coco, image, ann.parent / "images")
        assert (height, width) == pixels.shape[:2] == (96, 96) and pixels.dtype == np.uint16
        stack = tifffile.imread(file)
        if image.plane.z is None:
            np.testing.assert_array_equal(pixels, np.moveaxis(stack, 0, -1))
        else:
            np.testing.assert_array_equal(pixels, stack[Z_PLANE])


def test_a_stack_without_its_plane_is_refused_in_one_line(tmp_path: Path) -> None:
    ann = _tiff_dataset(tmp_path, "zstack")
    file = ann.parent / "images" / json.loads(ann.read_text())["images"][0]["file_name"]
    with pytest.raises(InputError, match=r"\.tif: 3 planes \(3 Z\) where one image is wanted; pick one with \"z\""):
        image_size(file)
    with pytest.raises(InputError, match=r'"z" 3 but the image has 3 Z planes \(0..2\)'):
        read_image(file, dataset_plane({"z": 3}, "x"))
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((20, 20), np.uint16))
    assert read_image(flat, dataset_plane({"z": 0}, "x")).shape == (20, 20)
    with pytest.raises(InputError, match=r'flat.tif: "z" 2 but the image has no Z planes'):
        image_size(flat, dataset_plane({"z": 2}, "x"))
    for bad in ({"z": -1}, {"z": "1"}, {"channels": [0, 1, 2, 3]}, {"axes": 3}):
        with pytest.raises(InputError, match=r"^x: "):
            dataset_plane(bad, "x")


def test_plane_keys_survive_normalising_the_dataset(tmp_path: Path) -> None:
    ann = _tiff_dataset(tmp_path, "zstack")
    out = convert_coco(ann, ann.parent / "images", tmp_path / "norm")
    images = json.loads(out.read_text())["images"]
    assert [i["z"] for i in images] == [Z_PLANE] * 2
    assert plane_keys(load_coco(out).images[0].plane) == {"z": Z_PLANE} and plane_keys(DATASET_PLANE) == {}
