"""The correct-and-retrain loop headless: segment, correct a layer, add to a training set, fine-tune, segment again.

The widgets work on napari's canvas-less ``ViewerModel`` (Qt offscreen); skipped where napari, Qt or pytest-qt
is missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("napari")
pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")

from napari.components import ViewerModel

from gains.core.coco import load_coco
from gains.core.masks import segmentation_to_crop
from gains.data.synth import make_sample
from gains.napari.train_widget import TrainWidget
from gains.napari.training import add_to_training_set, instances_of_layers
from gains.napari.widget import GainsWidget

pytestmark = pytest.mark.slow


def wait(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)


def test_layers_become_instances_and_a_second_add_replaces_the_image(tmp_path: Path) -> None:
    a = np.zeros((20, 30), np.uint16)
    a[2:6, 3:9], a[10:15, 10:20] = 4, 9  # two instances in layer a
    b = np.zeros((1, 20, 30), np.uint8)  # a layer placed on a plane of a stack: (1, H, W)
    b[0, 4:12, 5:12] = 1  # overlaps both of a's
    masks = instances_of_layers([a, b], (20, 30), ["a", "b"])
    assert [(m.y0, m.x0, m.y1, m.x1, m.area) for m in masks] == [(2, 3, 6, 9, 24), (10, 10, 15, 20, 50),
                                                                  (4, 5, 12, 12, 56)]
    pixels = np.arange(600, dtype=np.uint16).reshape(20, 30)
    folder = tmp_path / "set"
    add_to_training_set(folder, "one.tif", pixels, masks)
    add_to_training_set(folder, "two.tif", pixels, masks[:1])
    ann, n = add_to_training_set(folder, "one.tif", pixels, masks[1:])  # corrected again: replaces "one"
    coco = load_coco(ann)
    assert n == 2 and [i.file_name for i in coco.images] == ["two.tif", "one.tif"]
    got = {i.file_name: [segmentation_to_crop(x["segmentation"], 20, 30) for x in coco.anns_by_image[i.id]]
           for i in coco.images}
    assert [(m.y0, m.x0, m.area) for m in got["one.tif"]] == [(10, 10, 50), (4, 5, 56)]
    assert [(m.y0, m.x0, m.area) for m in got["two.tif"]] == [(2, 3, 24)]
    from gains.core.images import read_image

    assert np.array_equal(read_image(folder / "images" / "one.tif"), pixels)  # 16-bit kept
    with pytest.raises(Exception, match="shape"):
        instances_of_layers([np.zeros((5, 5), np.uint8)], (20, 30))


def test_segment_correct_add_finetune_and_segment_again(qtbot, tmp_path: Path, tiny_run: Path) -> None:
    viewer = ViewerModel()
    scene = make_sample("touch", 0, 96, seed=3)
    viewer.add_image(scene.image, name="cells")
    segment = GainsWidget(viewer)
    segment.model.line_edit.value, segment.score.value = str(tiny_run), 0.0
    segment.run()
    wait(qtbot, segment)
    train = TrainWidget(viewer)
    train.segment_widget = segment
    results = [x for x in viewer.layers if x._type_string == "labels"]
    assert results and list(train.instances.value) == results  # the image's result layers are preselected
    corrected = results[0]
    corrected.data = np.zeros_like(corrected.data)  # the user erases the model's guesses ...
    truth = np.zeros(corrected.data.shape, np.int32)
    for k, mask in enumerate(scene.masks, start=1):  # ... and paints the true cells (non-overlapping: touch)
        truth[np.asarray(mask, bool) & (truth == 0)] = k
    corrected.data = truth
    train.instances.value = [corrected]
    train.folder.value = str(tmp_path / "set")
    train.add()
    doc = json.loads((tmp_path / "set" / "annotations.json").read_text())
    assert len(doc["images"]) == 1 and len(doc["annotations"]) == len(np.unique(truth)) - 1
    assert train.status.value.startswith(f"{len(doc['annotations'])} instances of 'cells' added")
    train.minutes.value = 0.1
    train.run_dir.value = str(tmp_path / "model")
    train.train()
    assert train.worker is not None and not train.train_button.enabled
    wait(qtbot, train)
    assert train.status.value.startswith("new model:"), train.status.value
    assert (tmp_path / "model" / "last.pt").is_file()
    assert str(segment.model.value) == str(tmp_path / "model")  # the Segment widget now uses the new model
    segment.run()
    wait(qtbot, segment)
    assert segment.status.value.endswith("label layer(s)")


def test_train_widget_says_what_is_missing(qtbot, tmp_path: Path) -> None:
    viewer = ViewerModel()
    train = TrainWidget(viewer)
    train.add()
    assert train.status.value.startswith("choose a training set folder")
    train.folder.value = str(tmp_path / "set")
    train.add()
    assert train.status.value == "add or choose an image layer"
    viewer.add_image(np.zeros((32, 32), np.uint8), name="img")
    train.add()
    assert train.status.value == "choose the Labels layers of 'img''s instances"
    train.train()
    assert train.status.value == "name a model to start from (or choose one in the Segment widget)"
    train.start.value = "nuclei"
    train.train()
    assert train.status.value.endswith("add an image to the training set first") and train.worker is None
