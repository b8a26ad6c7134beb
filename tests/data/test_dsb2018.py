"""DSB2018 conversion: counts and pixel-identical masks on the shared data; errors on broken folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from gains.data.dsb2018 import convert_dsb2018, read_sample
from gains.errors import InputError
from tests.conftest import shared_path


def make_folder(root: Path, image_id: str, masks: list[np.ndarray], rgba: bool = True) -> Path:
    folder = root / image_id
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    h, w = masks[0].shape
    pixels = np.random.default_rng(0).integers(0, 255, (h, w, 4 if rgba else 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "images" / f"{image_id}.png")
    for k, m in enumerate(masks):
        Image.fromarray((m * 255).astype(np.uint8)).save(folder / "masks" / f"m{k}.png")
    return folder


def test_convert_small_layout_keeps_rgb_and_masks(tmp_path: Path) -> None:
    a = np.zeros((20, 30), dtype=bool)
    a[2:8, 3:9] = True
    b = np.zeros((20, 30), dtype=bool)
    b[8:15, 3:9] = True  # touches a
    make_folder(tmp_path / "src", "img1", [a, b])
    make_folder(tmp_path / "src", "img0", [b])
    ann = convert_dsb2018(tmp_path / "src", tmp_path / "out", progress=False)
    doc = json.loads(ann.read_text())
    assert [im["file_name"] for im in doc["images"]] == ["img0.png", "img1.png"]
    assert [a["category_id"] for a in doc["annotations"]] == [1, 1, 1]
    got = [mask_utils.decode(x["segmentation"]).astype(bool) for x in doc["annotations"]]
    np.testing.assert_array_equal(got[0], b)
    np.testing.assert_array_equal(got[1], a)
    np.testing.assert_array_equal(got[2], b)
    with Image.open(tmp_path / "out" / "images" / "img1.png") as im:
        assert im.mode == "RGB"
    sub = tmp_path / "subset.txt"
    sub.write_text("img1\n")
    doc = json.loads(convert_dsb2018(tmp_path / "src", tmp_path / "o2", subset=sub, progress=False).read_text())
    assert len(doc["images"]) == 1 and len(doc["annotations"]) == 2


def test_broken_folders_fail_with_the_file(tmp_path: Path) -> None:
    a = np.zeros((10, 10), dtype=bool)
    a[1:4, 1:4] = True
    folder = make_folder(tmp_path / "src", "x", [a, np.zeros((10, 10), dtype=bool)])
    with pytest.raises(InputError, match=r"m1.png: empty mask"):
        read_sample(folder)
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(folder / "masks" / "m1.png")
    with pytest.raises(InputError, match=r"m1.png: mask is 5x5 but the image is 10x10"):
        read_sample(folder)
    sub = tmp_path / "s.txt"
    sub.write_text("nope\n")
    with pytest.raises(InputError, match="image id nope"):
        convert_dsb2018(tmp_path / "src", tmp_path / "out", subset=sub, progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


@pytest.mark.slow
def test_cluster_proxy_counts_and_pixel_identity(tmp_path: Path) -> None:
    root = shared_path("data", "dsb2018", "stage1_train")
    subset = shared_path("data", "dsb2018", "cluster_nuclei_proxy.txt")
    ann = convert_dsb2018(root, tmp_path / "cn", subset=subset, workers=2, progress=False)
    doc = json.loads(ann.read_text())
    assert (len(doc["images"]), len(doc["annotations"])) == (156, 15480)
    by_image: dict[int, list[dict]] = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for image in doc["images"][:: 10]:  # every tenth image, every mask: pixel-identical to its PNG
        image_id = image["file_name"][:-4]
        files = sorted((root / image_id / "masks").glob("*.png"))
        anns = by_image[image["id"]]
        assert len(files) == len(anns)
        for f, a in zip(files, anns, strict=True):
            want = np.asarray(Image.open(f)) > 0
            np.testing.assert_array_equal(mask_utils.decode(a["segmentation"]).astype(bool), want)
            assert a["area"] == int(want.sum())
