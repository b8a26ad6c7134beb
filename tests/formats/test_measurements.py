"""``--format csv``: per-object measurements and the run summary, checked against hand-computed values and read
back with the csv module; ``gains predict`` writes them by default, ``gains export --to csv`` for ground truth."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from scipy.ndimage import binary_dilation

from gains.cli import main
from gains.core.masks import Instance, MaskCrop, tight_crop
from gains.formats import measurements
from gains.formats.result import ImageResult
from tests.formats.test_cli import gt_masks

CATS = [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}]
H, W = 20, 30


def rect(y0: int, x0: int, h: int, w: int, category: int = 1, score: float = 0.5) -> Instance:
    return Instance(category, score, MaskCrop(y0, x0, np.ones((h, w), bool)))


def scene() -> list[Instance]:
    """1 and 2 overlap (rows 4-5, cols 7-8); 3 meets 1 only at a corner (8-adjacent: (6, 2) and (5, 3));
    5 lies right under 4 (4-adjacent); 6 is one empty column right of 4 (apart)."""
    return [rect(2, 3, 4, 6, score=0.9), rect(4, 7, 4, 4, score=0.8), rect(6, 0, 3, 3, score=0.7),
            rect(10, 20, 3, 3, 2, 0.6), rect(13, 20, 2, 3, 2, 0.5), rect(10, 24, 3, 3, 2, 0.4)]


def pixels() -> np.ndarray:
    """Channel 0 is 30 y + x, channel 1 is 100 everywhere (uint16)."""
    yy, xx = np.mgrid[:H, :W]
    return np.stack([30 * yy + xx, np.full((H, W), 100)], axis=-1).astype(np.uint16)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_objects_csv_matches_hand_computed_values(tmp_path: Path) -> None:
    result = ImageResult(scene(), CATS, H, W, file_name="in/cells.tif", plane="z1", pixels=pixels())
    (path,) = measurements.write(result, tmp_path, "cells_z1")
    assert path.name == "cells_z1_objects.csv"
    rows = read_csv(path)
    assert list(rows[0]) == [
        "id", "image", "plane", "category_id", "category", "score", "area", "centroid_y", "centroid_x", "bbox_y0",
        "bbox_x0", "bbox_y1", "bbox_x1", "perimeter", "eccentricity", "solidity", "major_axis_length",
        "minor_axis_length", "orientation", "mean_intensity_c0", "max_intensity_c0", "mean_intensity_c1",
        "max_intensity_c1", "overlaps", "touches"]
    first = rows[0]
    assert (first["id"], first["image"], first["plane"], first["category"], first["score"]) == (
        "1", "in/cells.tif", "z1", "cell", "0.9")
    # a 4 x 6 rectangle at rows 2-5, columns 3-8
    assert int(first["area"]) == 24
    assert (float(first["centroid_y"]), float(first["centroid_x"])) == (3.5, 5.5)
    assert [int(first[k]) for k in ("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1")] == [2, 3, 6, 9]
    # skimage's perimeter weighs each pixel of a straight edge or a right-angle corner 1: 2 * 4 + 2 * 6 - 4
    assert float(first["perimeter"]) == 16.0
    assert float(first["solidity"]) == 1.0
    # pixel-centre variances of a run of n pixels are (n^2 - 1) / 12; axis lengths are 4 standard deviations
    major, minor = 4 * math.sqrt(35 / 12), 4 * math.sqrt(15 / 12)
    assert float(first["major_axis_length"]) == pytest.approx(major)
    assert float(first["minor_axis_length"]) == pytest.approx(minor)
    assert float(first["eccentricity"]) == pytest.approx(math.sqrt(1 - (minor / major) ** 2))
    assert abs(float(first["orientation"])) == pytest.approx(math.pi / 2)  # major axis along the columns
    assert float(first["mean_intensity_c0"]) == pytest.approx(30 * 3.5 + 5.5)  # 30 y + x at the centroid
    assert first["max_intensity_c0"] == str(30 * 5 + 8)  # integer pixels keep integer maxima
    assert float(first["mean_intensity_c1"]) == 100.0 and first["max_intensity_c1"] == "100"
    square = rows[1]  # 4 x 4: no preferred axis
    assert float(square["eccentricity"]) == pytest.approx(0.0)
    assert float(square["mean_intensity_c0"]) == pytest.approx(30 * 5.5 + 8.5)
    assert [(r["overlaps"], r["touches"]) for r in rows] == [("2", "3"), ("1", ""), ("", "1"), ("", "5"),
                                                             ("", "4"), ("", "")]
    assert [r["category_id"] for r in rows] == ["1", "1", "1", "2", "2", "2"]


def test_ground_truth_has_its_ids_an_empty_score_and_no_intensities(tmp_path: Path) -> None:
    result = ImageResult(scene()[:3], CATS, H, W, file_name="a.png", ids=[10, 20, 7], truth=True)
    rows = read_csv(measurements.write(result, tmp_path, "a")[0])
    assert [r["id"] for r in rows] == ["10", "20", "7"] and {r["score"] for r in rows} == {""}
    assert not any(k.startswith(("mean_", "max_")) for k in rows[0])
    assert [(r["overlaps"], r["touches"]) for r in rows] == [("20", "7"), ("10", ""), ("", "10")]


def test_summary_counts_pairs_and_mean_area(tmp_path: Path) -> None:
    insts = scene()
    parts = [measurements.collect(ImageResult(insts, CATS, H, W, file_name="cells.tif", plane="z1")),
             measurements.collect(ImageResult([], CATS, H, W, file_name="empty.png")),
             measurements.collect(ImageResult([rect(0, 0, 2, 2, 5)], CATS, H, W, file_name="odd.png"))]
    json.dumps(parts)  # plain data: it travels between processes
    (path,) = measurements.finish(tmp_path, parts, CATS)
    rows = read_csv(path)
    assert list(rows[0]) == ["image", "plane", "height", "width", "instances", "n_cell", "n_nucleus", "n_category5",
                             "overlapping_pairs", "touching_pairs", "mean_area"]
    assert [list(r.values()) for r in rows] == [
        ["cells.tif", "z1", "20", "30", "6", "3", "3", "0", "1", "2", str((24 + 16 + 9 + 9 + 6 + 9) / 6)],
        ["empty.png", "", "20", "30", "0", "0", "0", "0", "0", "0", ""],
        ["odd.png", "", "20", "30", "1", "0", "0", "1", "0", "0", "4.0"]]


def test_empty_image_writes_the_header_only(tmp_path: Path) -> None:
    rows = (tmp_path / "e_objects.csv")
    measurements.write(ImageResult([], CATS, H, W, pixels=pixels()[..., 0]), tmp_path, "e")
    assert rows.read_text().splitlines()[0].endswith("mean_intensity_c0,max_intensity_c0,overlaps,touches")
    assert len(rows.read_text().splitlines()) == 1


def test_contacts_equal_a_dense_check_of_every_pair() -> None:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:60, :60]
    dense, crops = [], []
    for _ in range(70):
        cy, cx, r = rng.integers(0, 60), rng.integers(0, 60), rng.integers(1, 7)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        mask &= rng.random(mask.shape) < 0.8  # ragged, sometimes several parts: boxes meet where pixels do not
        crop = tight_crop(mask)
        if crop is not None:
            dense.append(mask)
            crops.append(crop)
    overlapping, touching = measurements.contacts(crops)
    square = np.ones((3, 3), bool)
    want_o = [(i, j) for i in range(len(dense)) for j in range(i + 1, len(dense)) if (dense[i] & dense[j]).any()]
    want_t = [(i, j) for i in range(len(dense)) for j in range(i + 1, len(dense))
              if (i, j) not in want_o and (binary_dilation(dense[i], square) & dense[j]).any()]
    assert overlapping == want_o and touching == want_t and len(want_o) > 10 and len(want_t) > 5


def test_predict_writes_csv_by_default(tiny_run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = (rng.random((96, 112)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "cells.png")
    out = tmp_path / "out"
    assert main(["predict", str(tiny_run), str(tmp_path / "cells.png"), "--out", str(out), "--score-thresh", "0.0",
                 "--device", "cpu", "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = read_csv(out / "cells_objects.csv")
    assert results and len(rows) == len(results)
    for k, (row, r) in enumerate(zip(rows, results, strict=True), start=1):
        mask = mask_utils.decode({"size": r["segmentation"]["size"],
                                  "counts": r["segmentation"]["counts"].encode()}).astype(bool)
        assert int(row["id"]) == k and row["category"] == "nucleus"
        assert float(row["score"]) == pytest.approx(r["score"])
        assert int(row["area"]) == mask.sum()
        rr, cc = np.nonzero(mask)
        assert (float(row["centroid_y"]), float(row["centroid_x"])) == pytest.approx((rr.mean(), cc.mean()))
        assert [int(row[k]) for k in ("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1")] == [
            rr.min(), cc.min(), rr.max() + 1, cc.max() + 1]
        assert float(row["mean_intensity_c0"]) == pytest.approx(image[mask].mean())
        assert int(row["max_intensity_c0"]) == image[mask].max()
    (summary,) = read_csv(out / "summary.csv")
    assert summary["image"] == str(tmp_path / "cells.png") and summary["instances"] == str(len(results))
    assert summary["n_nucleus"] == str(len(results))
    pairs = sum(len(r["overlaps"].split(";")) for r in rows if r["overlaps"]) // 2
    assert summary["overlapping_pairs"] == str(pairs)
    assert (out / "cells_overlay.png").is_file()


def test_export_csv_of_ground_truth(small_coco: Path, tmp_path: Path) -> None:
    assert main(["export", str(small_coco.parent), "--to", "csv", "--out", str(tmp_path / "t")]) == 0
    square = np.ones((3, 3), bool)
    for stem, truth in gt_masks(small_coco).items():
        rows = read_csv(tmp_path / "t" / f"{stem}_objects.csv")
        assert [int(r["id"]) for r in rows] == [i for i, _ in truth]
        for row, (ann_id, mask) in zip(rows, truth, strict=True):
            others = [(i, m) for i, m in truth if i != ann_id]
            overlaps = [i for i, m in others if (m & mask).any()]
            touches = [i for i, m in others if i not in overlaps and (binary_dilation(mask, square) & m).any()]
            assert row["overlaps"] == ";".join(map(str, overlaps)) and row["touches"] == ";".join(map(str, touches))
            assert int(row["area"]) == mask.sum() and row["score"] == ""
    summary = read_csv(tmp_path / "t" / "summary.csv")
    assert [(r["image"], r["instances"], r["n_cell"], r["n_nucleus"]) for r in summary] == [
        ("a.png", "4", "3", "1"), ("b.png", "2", "2", "0")]
    assert summary[0]["overlapping_pairs"] == "4"  # discs 1-2, 1-3, 2-3 and the nucleus inside disc 1
