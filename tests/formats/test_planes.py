"""Planes of z-stacks and time series in the Fiji and QuPath outputs: ROIs carry the stack or hyperstack position
Fiji reads (1-based), GeoJSON features QuPath's ``plane`` (0-based), read back with roifile and json; predict's
``images.json`` and ``gains export`` keep the plane too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import roifile
import tifffile
from PIL import Image

from gains.cli import main
from gains.core.images import read_image
from gains.core.masks import Instance, tight_crop
from gains.core.planes import dataset_plane
from gains.formats import geojson, imagej
from gains.formats.result import ImageResult
from tests.conftest import disc_polygon
from tests.formats.helpers import CATEGORIES, H, W, scene


def positions(path: Path) -> set[tuple[int, int, int, int]]:
    """(position, c, z, t) of every ROI of a ROI set, as ImageJ's RoiDecoder reads them."""
    return {(r.position, r.c_position, r.z_position, r.t_position) for r in roifile.roiread(path)}


def planes(path: Path) -> list[dict[str, int] | None]:
    """Each feature's QuPath ``plane`` (None: none), where QuPath's importer reads it: inside the geometry."""
    return [f["geometry"].get("plane") for f in json.loads(path.read_text())["features"]]


@pytest.mark.parametrize(("z", "t", "roi", "plane"), [
    (None, None, (0, 0, 0, 0), None),  # a 2-D image: every plane (there is one), QuPath's default plane
    (1, None, (2, 0, 0, 0), {"c": -1, "z": 1, "t": 0}),  # z-stack plane z1: stack image 2
    (None, 4, (5, 0, 0, 0), {"c": -1, "z": 0, "t": 4}),  # time series frame t4: stack image 5
    (2, 1, (0, 0, 3, 2), {"c": -1, "z": 2, "t": 1}),  # Z and T: hyperstack slice 3, frame 2, every channel
])
def test_writers_put_every_object_on_its_plane(tmp_path: Path, z: int | None, t: int | None,
                                               roi: tuple[int, int, int, int], plane: dict[str, int] | None) -> None:
    masks = scene()  # composite ROIs (a ring, a two-part object) among them
    instances = [Instance(1 + k % 2, 0.9 - 0.1 * k, tight_crop(m)) for k, m in enumerate(masks)]
    result = ImageResult(instances, CATEGORIES, H, W, plane="x", z=z, t=t)
    (rois,) = imagej.write(result, tmp_path, "img")
    (doc,) = geojson.write(result, tmp_path, "img")
    assert len(roifile.roiread(rois)) == len(masks) and positions(rois) == {roi}
    assert planes(doc) == [plane] * len(masks)


def test_predict_of_a_z_stack_puts_each_planes_objects_on_it(tiny_run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stack = (rng.random((3, 64, 72)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    Image.fromarray(stack[0]).save(tmp_path / "flat.png")
    out = tmp_path / "out"
    assert main(["predict", str(tiny_run), str(tmp_path / "flat.png"), str(tmp_path / "stack.tif"), "--out", str(out),
                 "--format", "coco,imagej,geojson", "--score-thresh", "0.0", "--device", "cpu", "--quiet"]) == 0
    images = json.loads((out / "images.json").read_text())["images"]
    assert [(im["id"], im.get("plane"), im.get("z"), "t" in im) for im in images] == [
        (1, None, None, False), (2, "z0", 0, False), (3, "z1", 1, False), (4, "z2", 2, False)]
    for im in images[1:]:  # the entry is a dataset plane: it reads its plane back
        np.testing.assert_array_equal(read_image(im["file_name"], dataset_plane(im, "images.json")),
                                      stack[im["z"]])
    counts = {r["image_id"] for r in json.loads((out / "results.json").read_text())}
    assert counts == {1, 2, 3, 4}, "the tiny model predicts on every plane at threshold 0"
    assert positions(out / "flat_rois.zip") == {(0, 0, 0, 0)} and planes(out / "flat.geojson")[0] is None
    for z in range(3):
        assert positions(out / f"stack_z{z}_rois.zip") == {(z + 1, 0, 0, 0)}
        assert set(map(json.dumps, planes(out / f"stack_z{z}.geojson"))) == {json.dumps({"c": -1, "z": z, "t": 0})}


def test_export_keeps_the_plane_a_dataset_image_names(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    (folder / "images").mkdir(parents=True)
    tifffile.imwrite(folder / "images" / "stack.tif", np.zeros((3, 64, 80), np.uint8), imagej=True,
                     metadata={"axes": "ZYX"})
    Image.fromarray(np.zeros((64, 80), np.uint8)).save(folder / "images" / "flat.png")
    doc = {"images": [{"id": 1, "file_name": "stack.tif", "height": 64, "width": 80, "z": 1},
                      {"id": 2, "file_name": "flat.png", "height": 64, "width": 80, "z": 0}],  # 0: a 2-D file's only
           "annotations": [{"id": k, "image_id": i, "category_id": 1, "iscrowd": 0,
                            "segmentation": [disc_polygon(30, 20 + 30 * (k % 2), 10)]}
                           for k, i in ((1, 1), (2, 1), (3, 2))],
           "categories": [{"id": 1, "name": "cell"}]}
    (folder / "annotations.json").write_text(json.dumps(doc))
    for to in ("imagej", "geojson"):
        assert main(["export", str(folder), "--to", to, "--out", str(tmp_path / to)]) == 0
    assert positions(tmp_path / "imagej" / "stack_rois.zip") == {(2, 0, 0, 0)}
    assert planes(tmp_path / "geojson" / "stack.geojson") == [{"c": -1, "z": 1, "t": 0}] * 2
    assert positions(tmp_path / "imagej" / "flat_rois.zip") == {(0, 0, 0, 0)}
    assert planes(tmp_path / "geojson" / "flat.geojson") == [None]
