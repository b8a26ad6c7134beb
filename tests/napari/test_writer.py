"""The training-set writer (``gains.napari.writer``) on the reader's own layer tuples, without a viewer: a dataset
folder read as layers and written back is the same dataset; bad selections get one line and write nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gains.core.coco import load_coco
from gains.core.masks import segmentation_to_crop
from gains.data.synth import write_synthetic
from gains.errors import InputError
from gains.napari.reader import read_dataset_folder
from gains.napari.writer import write_training_set


def masks_of(folder: Path) -> list[tuple[int, bytes]]:
    """(category id, packed full-size mask) of every instance of a dataset's first image, sorted."""
    coco = load_coco(folder / "annotations.json")
    image = coco.images[0]
    out = []
    for a in coco.anns_by_image[image.id]:
        crop = segmentation_to_crop(a["segmentation"], image.height, image.width)
        full = np.zeros((image.height, image.width), bool)
        full[crop.y0:crop.y0 + crop.mask.shape[0], crop.x0:crop.x0 + crop.mask.shape[1]] = crop.mask
        out.append((int(a["category_id"]), np.packbits(full).tobytes()))
    return sorted(out)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_synthetic("overlap", 2, 96, seed=4, out=tmp_path / "source").parent


def first_image_layers(folder: Path) -> list:
    layers = read_dataset_folder(folder)
    first = layers[0][1]["metadata"]["gains_image"]
    return [x for x in layers if x[1]["metadata"]["gains_image"] == first and not x[1]["name"].endswith(" GA")]


def test_a_dataset_read_as_layers_writes_back_the_same_instances_and_categories(source: Path, tmp_path: Path) -> None:
    layers = first_image_layers(source)
    assert sum(kind == "labels" for *_, kind in layers) >= 2  # overlapping cells need more than one layer
    assert write_training_set(str(tmp_path / "set"), layers) == [str(tmp_path / "set")]
    assert masks_of(tmp_path / "set") == masks_of(source)
    categories = load_coco(tmp_path / "set" / "annotations.json").categories
    assert categories == load_coco(source / "annotations.json").categories
    write_training_set(str(tmp_path / "set"), layers)  # saved again: replaced, not added twice
    assert len(load_coco(tmp_path / "set" / "annotations.json").images) == 1


def test_a_painted_value_gets_the_first_category(source: Path, tmp_path: Path) -> None:
    layers = first_image_layers(source)
    data, attrs, kind = next(x for x in layers if x[2] == "labels")
    painted = data.copy()
    new = int(painted.max()) + 100
    free = np.argwhere(sum(x[0] for x in layers if x[2] == "labels") == 0)[0]
    painted[free[0], free[1]] = new
    layers = [(painted, attrs, kind) if x[0] is data else x for x in layers]
    write_training_set(str(tmp_path / "set"), layers)
    assert sorted(c for c, _ in masks_of(tmp_path / "set")) == sorted([1] + [c for c, _ in masks_of(source)])


@pytest.mark.parametrize("case", ["two images", "no labels", "a file suffix", "a stack", "another size", "not ours"])
def test_bad_selections_get_one_line_and_write_nothing(source: Path, tmp_path: Path, case: str) -> None:
    layers = first_image_layers(source)
    image = next(x for x in layers if x[2] == "image")
    labels = [x for x in layers if x[2] == "labels"]
    target = tmp_path / "set"
    if case == "two images":
        layers = [image, image, *labels]
    elif case == "no labels":
        layers = [image]
    elif case == "a file suffix":
        target = tmp_path / "set.tif"
    elif case == "a stack":
        layers = [(np.stack([image[0]] * 3), image[1], "image"), *labels]
    elif case == "another size":
        layers = [image, (labels[0][0][:-1], labels[0][1], "labels")]
    else:
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    with pytest.raises(InputError) as err:
        write_training_set(str(target), layers)
    assert "\n" not in str(err.value)
    assert not target.exists() or sorted(p.name for p in target.iterdir()) == ["notes.txt"]
