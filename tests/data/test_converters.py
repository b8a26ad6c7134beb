"""Converters from label images, mask folders, any COCO file and ISBI2014; split, stats and export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from pycocotools import mask as mask_utils

from gains.cli import main
from gains.data.folders import convert_labels, convert_masks
from gains.data.normalise import convert_coco
from gains.data.split import split_dataset
from gains.data.stats import dataset_stats
from gains.errors import InputError
from gains.formats.export import export_dataset
from tests.conftest import BAD_INPUTS, corrupt_dataset, disc_polygon, shared_path, write_coco


def decode_all(ann: Path) -> tuple[dict, list[np.ndarray]]:
    doc = json.loads(ann.read_text())
    return doc, [mask_utils.decode(a["segmentation"]).astype(bool) for a in doc["annotations"]]


@pytest.mark.parametrize("fmt", ["png16", "tif16", "tif32", "png8"])
def test_labels_keep_full_bit_depth_and_sparse_ids(fmt: str, tmp_path: Path) -> None:
    label = np.zeros((30, 40), dtype={"png16": np.uint16, "tif16": np.uint16, "tif32": np.uint32,
                                      "png8": np.uint8}[fmt])
    ids = {"png8": (7, 200), "png16": (300, 65000), "tif16": (1, 40000), "tif32": (5, 3_000_000_000)}[fmt]
    label[2:10, 3:12] = ids[0]
    label[10:20, 3:12] = ids[1]  # touches the first
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    Image.fromarray(np.full((30, 40), 9, dtype=np.uint8)).save(tmp_path / "img" / "a.png")
    if fmt.startswith("png"):
        Image.fromarray(label).save(tmp_path / "lab" / "a.png")
    else:
        tifffile.imwrite(tmp_path / "lab" / "a.tif", label)
    _, masks = decode_all(convert_labels(tmp_path / "img", tmp_path / "lab", tmp_path / "out"))
    assert len(masks) == 2
    np.testing.assert_array_equal(masks[0], label == ids[0])
    np.testing.assert_array_equal(masks[1], label == ids[1])
    assert (tmp_path / "out" / "images" / "a.png").read_bytes() == (tmp_path / "img" / "a.png").read_bytes()


def test_mask_folders_keep_overlaps_and_export_refuses_labels(tmp_path: Path) -> None:
    a = np.zeros((20, 20), dtype=np.uint8)
    a[2:12, 2:12] = 255
    b = np.zeros((20, 20), dtype=np.uint8)
    b[8:18, 8:18] = 255  # overlaps a
    folder = tmp_path / "src" / "s1"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    Image.fromarray(np.zeros((20, 20), dtype=np.uint8)).save(folder / "images" / "x.png")
    Image.fromarray(a).save(folder / "masks" / "0.png")
    Image.fromarray(b).save(folder / "masks" / "1.png")
    ann = convert_masks(tmp_path / "src", tmp_path / "ds", category="cell")
    _, masks = decode_all(ann)
    np.testing.assert_array_equal(masks[0], a > 0)
    np.testing.assert_array_equal(masks[1], b > 0)
    with pytest.raises(InputError, match="annotations 1 and 2 overlap; a label image cannot hold"):
        export_dataset(tmp_path / "ds", "labels", tmp_path / "lab")
    assert not (tmp_path / "lab").exists() and not (tmp_path / "lab.partial").exists()
    out = export_dataset(tmp_path / "ds", "masks", tmp_path / "mk")
    back = np.asarray(Image.open(out / "s1" / "masks" / "2.png")) > 0
    np.testing.assert_array_equal(back, b > 0)


def test_labels_round_trip_through_export(tmp_path: Path) -> None:
    label = np.zeros((16, 16), dtype=np.uint16)
    label[1:5, 1:5], label[5:9, 1:5], label[10:14, 10:15] = 3, 1000, 7
    (tmp_path / "i").mkdir()
    (tmp_path / "l").mkdir()
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(tmp_path / "i" / "q.png")
    Image.fromarray(label).save(tmp_path / "l" / "q.png")
    convert_labels(tmp_path / "i", tmp_path / "l", tmp_path / "ds")
    out = export_dataset(tmp_path / "ds", "labels", tmp_path / "back")
    back = tifffile.imread(out / "labels" / "q.tif")
    # same partition, values renumbered 1..n in order of the original ids
    for new, old in enumerate((3, 7, 1000), start=1):
        np.testing.assert_array_equal(back == new, label == old)


def test_coco_normalise_polygons_rle_and_ids(small_coco: Path, tmp_path: Path) -> None:
    doc = json.loads(small_coco.read_text())
    for a in doc["annotations"]:
        a["id"] += 100
    doc["annotations"][0]["note"] = "kept"
    small_coco.write_text(json.dumps(doc))
    ann = convert_coco(small_coco, small_coco.parent / "images", tmp_path / "norm")
    out, masks = decode_all(ann)
    assert [a["id"] for a in out["annotations"]] == list(range(1, 7))
    assert out["annotations"][0]["orig_id"] == 101 and out["annotations"][0]["note"] == "kept"
    poly = doc["annotations"][1]["segmentation"]
    want = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(poly, 64, 80))).astype(bool)
    np.testing.assert_array_equal(masks[1], want)
    # converting the canonical file again is the identity on masks
    _, again = decode_all(convert_coco(ann, tmp_path / "norm" / "images", tmp_path / "ds2"))
    for m1, m2 in zip(masks, again, strict=True):
        np.testing.assert_array_equal(m1, m2)


def test_coco_normalise_rejects_bad_items(small_coco: Path, tmp_path: Path) -> None:
    doc = json.loads(small_coco.read_text())
    doc["annotations"][2]["segmentation"] = {"size": [10, 10], "counts": "abc"}
    small_coco.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"annotation 3: RLE size \[10, 10\] differs"):
        convert_coco(small_coco, small_coco.parent / "images", tmp_path / "norm")
    assert not (tmp_path / "norm").exists() and not (tmp_path / "ds.partial").exists()


def test_split_is_seeded_and_partitions(tmp_path: Path) -> None:
    anns = [{"image_id": i, "category_id": 1, "segmentation": [disc_polygon(10, 10, 5)]} for i in range(1, 11)]
    ann = write_coco(tmp_path / "d", [(f"{i}.png", 20, 20) for i in range(1, 11)], anns)
    first = {k: json.loads(v.read_text()) for k, v in split_dataset(ann.parent, (6, 2, 2), seed=3).items()}
    again = {k: json.loads(v.read_text()) for k, v in split_dataset(ann.parent, (6, 2, 2), seed=3).items()}
    other = {k: json.loads(v.read_text()) for k, v in split_dataset(ann.parent, (6, 2, 2), seed=4).items()}
    ids = {k: sorted(im["id"] for im in v["images"]) for k, v in first.items()}
    assert ids == {k: sorted(im["id"] for im in v["images"]) for k, v in again.items()}
    assert ids != {k: sorted(im["id"] for im in v["images"]) for k, v in other.items()}
    assert [len(ids[k]) for k in ("train", "val", "test")] == [6, 2, 2]
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == list(range(1, 11))
    assert all(a["image_id"] in ids["val"] for a in first["val"]["annotations"])
    with pytest.raises(InputError, match="45 ISBI2014"):
        split_dataset(ann.parent, preset="isbi2014-30-15")


def test_stats_counts_pairs(small_coco: Path) -> None:
    stats = dataset_stats(small_coco)
    assert stats["images"] == 2 and stats["instances"] == 6
    assert stats["per_category"] == {"cell": 5, "nucleus": 1}
    # the three cells of image 1 overlap pairwise; the two discs of image 2 meet (centres 24 px apart, r = 12)
    assert stats["overlap_pairs"] >= 3 and stats["overlap_pairs"] + stats["touch_pairs"] == 4
    assert stats["instances_per_image"] == {"min": 2, "median": 3.0, "max": 4}


def test_cli_convert_split_stats(small_coco: Path, tmp_path: Path, capsys) -> None:
    assert main(["convert", "coco", str(small_coco), "--images", str(small_coco.parent / "images"),
                 "--out", str(tmp_path / "norm")]) == 0
    assert main(["split", str(tmp_path / "norm"), "--ratios", "1:0:1", "--seed", "1"]) == 0
    assert main(["stats", str(tmp_path / "norm"), "--json", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["instances"] == 6
    assert main(["convert", "coco", str(small_coco), "--images", str(small_coco.parent / "images"),
                 "--out", str(tmp_path / "norm")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_isbi2014_counts_and_pixel_identity(tmp_path: Path) -> None:
    from scipy.io import loadmat

    from gains.data.isbi2014 import convert_isbi2014

    images = shared_path("data", "isbi2014", "train_images")
    gt = shared_path("data", "isbi2014", "isbi_train_GT.mat")
    ann = convert_isbi2014(images, gt, tmp_path / "isbi")
    doc, masks = decode_all(ann)
    cells = [(a, m) for a, m in zip(doc["annotations"], masks, strict=True) if a["category_id"] == 1]
    assert len(doc["images"]) == 45 and len(cells) == 270
    mat = loadmat(str(gt))
    k = 0
    for i, image in enumerate(doc["images"]):
        assert image["file_name"] == f"{i + 1}.tif"
        for c in mat["train_Cytoplasm"][i][0]:
            np.testing.assert_array_equal(cells[k][1], np.asarray(c[0]).astype(bool))
            assert cells[k][0]["image_id"] == image["id"]
            k += 1
    nuclei = {a["image_id"]: np.zeros((512, 512), bool) for a in doc["annotations"]}
    for a, m in zip(doc["annotations"], masks, strict=True):
        if a["category_id"] == 2:
            nuclei[a["image_id"]] |= m
    for i, image in enumerate(doc["images"]):
        np.testing.assert_array_equal(nuclei[image["id"]], mat["train_Nuclei"][i][0].astype(bool))
    split = split_dataset(ann.parent, preset="isbi2014-30-15")
    assert len(json.loads(split["train"].read_text())["images"]) == 30


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_convert_coco_bad_input_one_line_no_output(case: str, small_coco: Path, tmp_path: Path, capsys) -> None:
    msg = corrupt_dataset(case, small_coco)
    # pycocotools rasterises a zero-area polygon to nothing: reported as an empty mask
    msg = {"degenerate polygon": "annotation 5: empty mask", "malformed polygon": "annotation 5: polygon needs",
           "empty mask": "annotation 5: empty mask"}.get(case, msg)
    code = main(["convert", "coco", str(small_coco), "--images", str(small_coco.parent / "images"),
                 "--out", str(tmp_path / "norm")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and msg in err[0], err
    assert not (tmp_path / "norm").exists() and not (tmp_path / "norm.partial").exists()
