"""Layer builders (no napari, no Qt): overlaps split into label layers, features tables, GA image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gains.core.masks import tight_crop
from gains.formats.measurements import measure
from gains.inference.predictor import Instance
from gains.napari.layers import ga_layer, image_layer, instance_layers, result_layers

SRC = Path(__file__).resolve().parents[2] / "src"
CATS = [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}]


def disc(cy: int, cx: int, r: int, shape=(40, 50)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def inst(mask: np.ndarray, score: float, category: int = 1, ga: float | None = None) -> Instance:
    crop = tight_crop(mask)
    return Instance(category, score, crop, None if ga is None else np.full(crop.mask.shape, ga, np.float32))


def scene() -> list[Instance]:
    """a and b overlap, c is apart; by descending score."""
    return [inst(disc(20, 15, 8), 0.9), inst(disc(20, 25, 8), 0.8, ga=3.0), inst(disc(8, 44, 4), 0.7, 2, ga=2.0)]


def test_overlapping_instances_land_in_different_label_layers() -> None:
    insts = scene()
    layers = instance_layers(insts, 40, 50, CATS, "img")
    assert [kind for *_, kind in layers] == ["labels", "labels"]
    assert [kw["name"] for _, kw, _ in layers] == ["img instances 0", "img instances 1"]
    (first, f0, _), (second, f1, _) = layers
    # every instance is exactly its mask, with value k + 1, in the layer its features row says
    for k, i in enumerate(insts):
        full = np.zeros((40, 50), bool)
        full[i.mask.y0 : i.mask.y1, i.mask.x0 : i.mask.x1] = i.mask.mask
        array = first if k + 1 in f0["features"]["index"] else second
        assert np.array_equal(array == k + 1, full)
    assert f0["features"]["index"].tolist() == [1, 3] and f1["features"]["index"].tolist() == [2]


def test_features_table_has_score_area_and_category() -> None:
    insts = scene()
    (_, f0, _), (_, f1, _) = instance_layers(insts, 40, 50, CATS, "img")
    feats = f0["features"]
    assert feats["score"].tolist() == [0.9, 0.7]
    assert feats["area"].tolist() == [int(disc(20, 15, 8).sum()), int(disc(8, 44, 4).sum())]
    assert feats["category"] == ["cell", "nucleus"] and feats["category_id"].tolist() == [1, 2]
    assert f1["features"]["score"].tolist() == [0.8]
    gt = instance_layers(insts, 40, 50, CATS, "gt", scores=False)
    assert "score" not in gt[0][1]["features"]


def test_features_hold_the_csv_measurements() -> None:
    insts = scene()
    image = np.arange(40 * 50, dtype=np.uint16).reshape(40, 50)
    table = measure(insts, CATS, pixels=image)
    layers = result_layers(image, insts, CATS, "img", 40, 50)
    f0, f1 = layers[1][1]["features"], layers[2][1]["features"]
    assert list(f0) == ["index", *table] and "mean_intensity_c0" in f0 and "centroid_x" in f0
    assert f0["overlaps"] == ["2", ""] and f1["overlaps"] == ["1"]  # ids = label values, across layers
    assert f0["id"].tolist() == f0["index"].tolist() == [1, 3]
    a = disc(20, 15, 8)
    assert f0["mean_intensity_c0"][0] == pytest.approx(image[a].mean()) and f0["max_intensity_c0"][0] == image[a].max()
    assert "mean_intensity_c0" not in instance_layers(insts, 40, 50, CATS, "img")[0][1]["features"]


def test_no_overlap_gives_one_layer_and_no_instances_an_empty_one() -> None:
    insts = [inst(disc(10, 10, 5), 0.9), inst(disc(30, 40, 5), 0.8)]
    (array, kw, _), = instance_layers(insts, 40, 50, CATS, "img")
    assert kw["name"] == "img instances" and set(np.unique(array)) == {0, 1, 2}
    (empty, kw, _), = instance_layers([], 40, 50, CATS, "img")
    assert empty.shape == (40, 50) and not empty.any() and kw["features"]["index"].size == 0


def test_ga_image_layer_shape_and_values() -> None:
    insts = scene()
    layers = result_layers(np.zeros((40, 50), np.uint8), insts, CATS, "img", 40, 50)
    assert [kw["name"] for _, kw, _ in layers] == ["img", "img instances 0", "img instances 1", "img GA"]
    ga, kw, kind = layers[-1]
    assert kind == "image" and ga.shape == (40, 50) and ga.dtype == np.float32
    assert ga[20, 25] == 3.0 and ga[8, 44] == 2.0 and ga[0, 0] == 1.0 and ga[20, 12] == 1.0  # a has no GA map
    assert kw["colormap"] == "inferno" and not kw["visible"] and kw["contrast_limits"] == [1.0, 3.0]
    assert ga_layer(np.ones((3, 3), np.float32), "x")[1]["contrast_limits"] == [1.0, 2.0]
    no_ga = result_layers(None, insts[:1], CATS, "img", 40, 50)
    assert [kind for *_, kind in no_ga] == ["labels"]


def test_ga_contrast_keeps_boxes_dark_and_contacts_bright() -> None:
    ga = np.ones((40, 40), np.float32)
    ga[5:35, 5:35] = 1.02  # a box the model fills with a faint anomaly (the nuclei model: 1.00-1.15)
    ga[18:22, 5:35] = np.linspace(1.05, 1.15, 30, dtype=np.float32)  # a contact band, rising along it
    low, high = ga_layer(ga, "x")[1]["contrast_limits"]
    assert low == pytest.approx(1.02) and high == pytest.approx(np.percentile(ga[ga > 1], 99.9))
    assert low < 1.05 < high <= 1.15  # the box floor is black, the contact band spans the colour map


def test_image_layer_kinds() -> None:
    assert image_layer(np.zeros((4, 5, 3), np.uint8), "rgb")[1] == {"name": "rgb", "rgb": True}
    _, kw, _ = image_layer(np.zeros((4, 5, 2), np.uint16), "two")
    assert kw["channel_axis"] == 2 and kw["name"] == ["two [0]", "two [1]"]


def test_layer_builders_and_reader_import_neither_napari_nor_qt() -> None:
    code = ("import sys, gains.napari.layers, gains.napari.reader, gains.napari.segment; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide6')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(SRC)})
    assert out.stdout.strip() == "[]"


def test_the_reader_path_imports_no_torch() -> None:
    """napari calls the reader after its OpenGL canvas exists, where a late torch (triton) import can crash it."""
    code = ("import sys, gains.napari.layers, gains.napari.planes, gains.napari.reader, gains.napari.native; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'triton')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(SRC)})
    assert out.stdout.strip() == "[]"
