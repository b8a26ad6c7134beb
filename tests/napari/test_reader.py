"""The reader: a tiny ``gains predict`` output folder and a tiny dataset folder, as layers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gains.errors import InputError
from gains.formats import ga
from gains.formats.coco import coco_results
from gains.formats.result import ImageResult
from gains.napari.reader import folder_kind, get_reader, read_folder
from tests.napari.test_layers import CATS, scene


def predict_folder(tmp_path: Path, with_ga: bool = True) -> Path:
    """What ``gains predict img.png --format coco,ga`` writes for the three-instance scene (a, b overlap)."""
    image = tmp_path / "img.png"
    Image.fromarray(np.arange(40 * 50, dtype=np.uint16).reshape(40, 50).astype(np.uint8)).save(image)
    out = tmp_path / "pred"
    out.mkdir()
    insts = scene()
    doc = {"images": [{"id": 1, "file_name": str(image), "height": 40, "width": 50}], "categories": CATS}
    (out / "images.json").write_text(json.dumps(doc))
    (out / "results.json").write_text(json.dumps(coco_results(insts, 1, 40, 50)))
    if with_ga:
        ga.write(ImageResult(insts, CATS, 40, 50), out, "img")
    return out


def test_predict_folder_layers(tmp_path: Path) -> None:
    out = predict_folder(tmp_path)
    assert folder_kind(out) == "predict" and get_reader(str(out)) is read_folder
    layers = read_folder(str(out))
    assert [(kw["name"], kind) for _, kw, kind in layers] == [
        ("img", "image"), ("img instances 0", "labels"), ("img instances 1", "labels"), ("img GA", "image")]
    pixels, (l0, f0, _), (l1, f1, _), (ga, _, _) = layers[0][0], layers[1], layers[2], layers[3]
    assert pixels.shape == (40, 50) and pixels[0, 1] == 1
    assert f0["features"]["index"].tolist() == [1, 3] and f1["features"]["index"].tolist() == [2]
    assert np.allclose(f0["features"]["score"], [0.9, 0.7]) and f0["features"]["category"] == ["cell", "nucleus"]
    insts = scene()
    for array, k in ((l0, 0), (l1, 1), (l0, 2)):
        m = insts[k].mask
        assert np.array_equal((array == k + 1)[m.y0 : m.y1, m.x0 : m.x1], m.mask)
        assert np.count_nonzero(array == k + 1) == m.mask.sum()
    assert ga.shape == (40, 50) and ga[20, 25] == 3.0 and ga[0, 0] == 1.0
    assert [kw["visible"] for _, kw, _ in layers] == [True, True, True, False]  # the GA map starts hidden


def test_predict_folder_without_image_file_or_ga(tmp_path: Path) -> None:
    out = predict_folder(tmp_path, with_ga=False)
    (tmp_path / "img.png").unlink()
    names = [kw["name"] for _, kw, _ in read_folder(str(out))]
    assert names == ["img instances 0", "img instances 1"]


def test_dataset_folder_is_ground_truth(small_coco: Path) -> None:
    folder = small_coco.parent
    assert folder_kind(folder) == "dataset"
    layers = read_folder([str(folder)])
    a = [(kw["name"], kind) for _, kw, kind in layers if kw["metadata"]["gains_image"] == "a"]
    assert a[0] == ("a", "image") and all(kind == "labels" for _, kind in a[1:]) and len(a) >= 3  # overlaps
    a_feats = [kw["features"] for _, kw, kind in layers if kind == "labels" and kw["metadata"]["gains_image"] == "a"]
    assert sorted(i for f in a_feats for i in f["index"].tolist()) == [1, 2, 3, 4]
    assert all("score" not in f for f in a_feats)
    assert sorted(c for f in a_feats for c in f["category"]) == ["cell", "cell", "cell", "nucleus"]
    b = [kw for _, kw, _ in layers if kw["metadata"]["gains_image"] == "b"]
    assert b[0]["name"] == "b" and b[1]["name"].startswith("b instances")
    assert all(kw["visible"] for _, kw, _ in layers[: len(a)]) and not any(kw["visible"] for kw in b)


def test_other_paths_are_declined_and_bad_json_is_one_line(tmp_path: Path) -> None:
    assert get_reader(str(tmp_path)) is None
    assert get_reader(str(tmp_path / "x.png")) is None
    out = predict_folder(tmp_path)
    (out / "results.json").write_text("{oops")
    with pytest.raises(InputError, match=r"results.json: not valid JSON"):
        read_folder(str(out))
    with pytest.raises(InputError, match="neither a gains predict folder"):
        read_folder(str(tmp_path))
