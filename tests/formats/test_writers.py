"""The Fiji and QuPath writers, read back with the libraries users read them with (roifile; geojson and
shapely), overlapping instances kept apart, each outline rasterising back to its mask exactly."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geojson as geojson_lib
import numpy as np
import pytest
import roifile
from shapely.geometry import shape

from gains.core.coco import load_coco
from gains.core.masks import MaskCrop
from gains.errors import InputError
from gains.formats import geojson, imagej
from gains.formats.export import ground_truth
from gains.formats.records import Record
from gains.formats.result import ImageResult
from tests.conftest import disc_polygon, write_coco
from tests.formats.helpers import CATEGORIES, H, W, predicted, rasterise_geometry, rasterise_rings, scene

# roifile before 2026.1.20 cut the properties short when reading (writing was right, ImageJ reads them)
READS_PROPS = tuple(int(v) for v in roifile.__version__.split(".")[:3]) >= (2026, 1, 20)


def props(roi) -> dict[str, str]:
    if not READS_PROPS:
        pytest.skip(f"roifile {roifile.__version__} misreads ROI properties")
    return dict(line.split(": ", 1) for line in roi.props.splitlines())


def test_imagej_zip_reads_back_with_roifile(tmp_path: Path) -> None:
    masks = scene()
    path = imagej.write_records(predicted(masks), tmp_path / "img_rois.zip")
    rois = roifile.roiread(path)
    assert [r.name for r in rois] == ["0001_cell_0.900", "0002_nucleus_0.800", "0003_cell_0.700",
                                      "0004_nucleus_0.600", "0005_cell_0.500"]
    assert zipfile.ZipFile(path).namelist() == [f"{r.name}.roi" for r in rois]
    types = [r.roitype for r in rois]
    assert types == [roifile.ROI_TYPE.TRACED, roifile.ROI_TYPE.TRACED, roifile.ROI_TYPE.RECT,
                     roifile.ROI_TYPE.RECT, roifile.ROI_TYPE.TRACED]
    assert [r.composite for r in rois] == [False, False, True, True, False]
    for roi, mask in zip(rois, masks, strict=True):
        rings = roi.coordinates(multi=True)
        back = rasterise_rings(rings, H, W)
        np.testing.assert_array_equal(back, mask)  # exact, overlap pixels in both discs
        assert all(np.array_equal(np.round(r), r) for r in rings)  # integer pixel-corner vertices
        ys, xs = np.nonzero(mask)
        assert (roi.left, roi.top, roi.right, roi.bottom) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert roi.position == 0 and roi.stroke_color[0] == 255
    assert rois[0].hexcolor(rois[0].stroke_color) == "#1f77b4"
    assert (rasterise_rings(rois[0].coordinates(multi=True), H, W)
            & rasterise_rings(rois[1].coordinates(multi=True), H, W)).any()  # the overlap is kept twice
    for roi, mask in zip(rois, masks, strict=True):
        p = props(roi)
        assert int(p["area_px"]) == mask.sum() and p["category"] in ("cell", "nucleus")
    assert props(rois[0]) == {"area_px": str(masks[0].sum()), "category": "cell", "id": "1", "score": "0.9"}


def test_geojson_is_valid_and_has_the_qupath_fields(tmp_path: Path) -> None:
    masks = scene()
    path = geojson.write_records(predicted(masks), tmp_path / "img.geojson")
    doc = geojson_lib.loads(path.read_text())
    assert doc.is_valid, doc.errors()
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == len(masks)
    kinds = [f["geometry"]["type"] for f in doc["features"]]
    assert kinds == ["Polygon", "Polygon", "Polygon", "MultiPolygon", "Polygon"]
    for feature, mask in zip(doc["features"], masks, strict=True):
        geom = shape(feature["geometry"])
        assert geom.is_valid and geom.area == mask.sum()
        np.testing.assert_array_equal(rasterise_geometry(feature["geometry"], H, W), mask)
        props = feature["properties"]
        assert props["objectType"] == "detection"
        assert props["classification"]["name"] in ("cell", "nucleus") and len(props["classification"]["color"]) == 3
        assert props["measurements"]["area_px"] == mask.sum()
    first = doc["features"][0]
    assert first["properties"]["name"] == "0001_cell_0.900"
    assert first["properties"]["measurements"] == {"id": 1, "area_px": int(masks[0].sum()), "score": 0.9}
    ids = [f["id"] for f in doc["features"]]
    assert len(set(ids)) == len(ids) and all(len(i) == 36 for i in ids)  # UUIDs, as QuPath 0.4+ reads them
    again = geojson.write_records(predicted(masks), tmp_path / "again.geojson", stem="img")
    assert [f["id"] for f in json.loads(again.read_text())["features"]] == ids  # same instances, same ids


def ground_truth_of(folder: Path, anns: list[dict]) -> ImageResult:
    """The one image of a dataset of ``anns`` (ids given, image 1 of H x W) as ``gains export`` reads it."""
    coco = load_coco(write_coco(folder, [("a.png", H, W)], [{"image_id": 1, **a} for a in anns], CATEGORIES))
    return ground_truth(coco, coco.images[0], folder / "images")


def test_ground_truth_records_from_annotations(tmp_path: Path) -> None:
    anns = [{"id": 7, "category_id": 2, "segmentation": [disc_polygon(30, 30, 10)]},
            {"id": 9, "category_id": 1, "segmentation": [disc_polygon(32, 38, 10)]}]
    records = ground_truth_of(tmp_path, anns).records
    assert [(r.id, r.category, r.score) for r in records] == [(7, "nucleus", None), (9, "cell", None)]
    doc = geojson.feature_collection(records, object_type="annotation", stem="a")
    assert [f["properties"]["name"] for f in doc["features"]] == ["0007_nucleus", "0009_cell"]
    assert all(f["properties"]["objectType"] == "annotation" for f in doc["features"])
    assert "score" not in doc["features"][0]["properties"]["measurements"]
    roi = imagej.to_roi(records[0])
    assert roi.name == "0007_nucleus" and roi.props == f"area_px: {records[0].area}\ncategory: nucleus\nid: 7\n"


def test_empty_image_gives_empty_files(tmp_path: Path) -> None:
    assert roifile.roiread(imagej.write_records([], tmp_path / "e_rois.zip")) == []
    doc = geojson_lib.loads(geojson.write_records([], tmp_path / "e.geojson").read_text())
    assert doc.is_valid and doc["features"] == []


def test_bad_input_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    good = predicted(scene()[:1])
    with pytest.raises(ValueError, match=r"\.zip"):
        imagej.write_records(good, tmp_path / "x.roi")
    with pytest.raises(ValueError, match="object type"):
        geojson.write_records(good, tmp_path / "x.geojson", object_type="cell")
    twice = [good[0], good[0]]
    with pytest.raises(ValueError, match="share an id"):
        imagej.write_records(twice, tmp_path / "t_rois.zip")
    empty = [Record(1, 1, "cell", MaskCrop(0, 0, np.zeros((2, 2), bool)))]
    with pytest.raises(ValueError, match="non-empty"):
        geojson.write_records(empty, tmp_path / "e.geojson")
    negative = [Record(1, 1, "cell", MaskCrop(-1, 0, np.ones((2, 2), bool)))]
    with pytest.raises(ValueError, match="negative"):
        imagej.write_records(negative, tmp_path / "n_rois.zip")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="annotation 3 \\(image 1\\): empty mask"):
        ground_truth_of(tmp_path, [{"id": 3, "category_id": 1, "segmentation": [[200, 200, 210, 200, 210, 210]]}])
