"""``gains predict --format imagej,geojson`` and ``gains export --to imagej|geojson`` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geojson as geojson_lib
import numpy as np
import pytest
import roifile
from PIL import Image
from pycocotools import mask as mask_utils

from gains.cli import main
from gains.core.masks import segmentation_to_crop
from tests.conftest import BAD_INPUTS, corrupt_dataset
from tests.formats.helpers import rasterise_geometry, rasterise_rings


def test_predict_writes_rois_and_geojson_matching_the_coco_masks(tiny_run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((96, 112)) * 255).astype(np.uint8)).save(tmp_path / "cells.png")
    out = tmp_path / "out"
    assert main(["predict", str(tiny_run), str(tmp_path / "cells.png"), "--out", str(out), "--format",
                 "coco,imagej,geojson", "--score-thresh", "0.0", "--device", "cpu", "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results, "the tiny model predicts something at threshold 0"
    masks = [mask_utils.decode({"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()})
             .astype(bool) for r in results]
    rois = roifile.roiread(out / "cells_rois.zip")
    doc = geojson_lib.loads((out / "cells.geojson").read_text())
    assert doc.is_valid and len(rois) == len(doc["features"]) == len(results)
    for k, (roi, feature, r, mask) in enumerate(zip(rois, doc["features"], results, masks, strict=True), start=1):
        assert roi.name == feature["properties"]["name"] == f"{k:04d}_nucleus_{r['score']:.3f}"
        np.testing.assert_array_equal(rasterise_rings(roi.coordinates(multi=True), 96, 112), mask)
        np.testing.assert_array_equal(rasterise_geometry(feature["geometry"], 96, 112), mask)
        assert feature["properties"]["objectType"] == "detection"
        assert feature["properties"]["measurements"]["score"] == pytest.approx(r["score"])


def test_predict_unknown_format_is_one_line(tiny_run: Path, tmp_path: Path, capsys) -> None:
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "a.png")
    assert main(["predict", str(tiny_run), str(tmp_path / "a.png"), "--out", str(tmp_path / "o"),
                 "--format", "imagej,qupath", "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown output format 'qupath'" in err[0] and "geojson" in err[0]
    assert not (tmp_path / "o").exists()


def gt_masks(ann_path: Path) -> dict[str, list[tuple[int, np.ndarray]]]:
    doc = json.loads(ann_path.read_text())
    out: dict[str, list[tuple[int, np.ndarray]]] = {}
    for image in doc["images"]:
        h, w = image["height"], image["width"]
        out[Path(image["file_name"]).stem] = [
            (a["id"], segmentation_to_crop(a["segmentation"], h, w).to_dense(h, w))
            for a in doc["annotations"] if a["image_id"] == image["id"]]
    return out


def visible(folder: Path) -> list[str]:
    """The files of ``folder`` a user sees (not gains's hidden owner marker and lock file)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_export_imagej_and_geojson_keep_overlapping_ground_truth(small_coco: Path, tmp_path: Path, capsys) -> None:
    folder = small_coco.parent
    truth = gt_masks(small_coco)
    assert main(["export", str(folder), "--to", "imagej", "--out", str(tmp_path / "ij")]) == 0
    assert main(["export", str(folder), "--to", "geojson", "--out", str(tmp_path / "qp")]) == 0
    assert "exported" in capsys.readouterr().out
    assert visible(tmp_path / "ij") == ["a_rois.zip", "b_rois.zip"]
    assert visible(tmp_path / "qp") == ["a.geojson", "b.geojson"]
    names = {1: "cell", 2: "nucleus"}
    cats = {a["id"]: a["category_id"] for a in json.loads(small_coco.read_text())["annotations"]}
    for stem, instances in truth.items():
        rois = roifile.roiread(tmp_path / "ij" / f"{stem}_rois.zip")
        doc = geojson_lib.loads((tmp_path / "qp" / f"{stem}.geojson").read_text())
        assert doc.is_valid and len(rois) == len(doc["features"]) == len(instances)
        for roi, feature, (ann_id, mask) in zip(rois, doc["features"], instances, strict=True):
            assert roi.name == feature["properties"]["name"] == f"{ann_id:04d}_{names[cats[ann_id]]}"
            np.testing.assert_array_equal(rasterise_rings(roi.coordinates(multi=True), 64, 80), mask)
            np.testing.assert_array_equal(rasterise_geometry(feature["geometry"], 64, 80), mask)
            assert feature["properties"]["objectType"] == "annotation"
            assert feature["properties"]["measurements"] == {"id": ann_id, "area_px": int(mask.sum())}
    overlapping = [m for _, m in truth["a"][:2]]
    assert (overlapping[0] & overlapping[1]).any()  # the scene does overlap, and both outlines kept it


def test_export_refuses_a_non_empty_folder_and_colliding_stems(small_coco: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    assert main(["export", str(small_coco.parent), "--to", "geojson", "--out", str(tmp_path / "busy")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["export", str(small_coco.parent), "--to", "geojson", "--out", str(tmp_path / "busy"),
                 "--overwrite"]) == 2  # --overwrite replaces only a folder gains made
    assert "not made by gains" in capsys.readouterr().err and visible(tmp_path / "busy") == ["keep.txt"]
    assert main(["export", str(small_coco.parent), "--to", "imagej", "--out", str(tmp_path / "ours")]) == 0
    assert main(["export", str(small_coco.parent), "--to", "geojson", "--out", str(tmp_path / "ours"),
                 "--overwrite"]) == 0
    assert visible(tmp_path / "ours") == ["a.geojson", "b.geojson"]
    doc = json.loads(small_coco.read_text())
    Image.open(small_coco.parent / "images" / "b.png").save(small_coco.parent / "images" / "b.tif")
    doc["images"][1]["file_name"] = "b.tif"
    doc["images"][0]["file_name"] = "b.png"
    shutil.copyfile(small_coco.parent / "images" / "a.png", small_coco.parent / "images" / "b.png")
    small_coco.write_text(json.dumps(doc))
    assert main(["export", str(small_coco.parent), "--to", "imagej", "--out", str(tmp_path / "c")]) == 2
    assert "share the file name stem 'b'" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "c.partial").exists()


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_export_bad_dataset_one_line_no_output(case: str, small_coco: Path, tmp_path: Path, capsys) -> None:
    msg = corrupt_dataset(case, small_coco)
    code = main(["export", str(small_coco.parent), "--to", "imagej", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and msg in err[0], err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
