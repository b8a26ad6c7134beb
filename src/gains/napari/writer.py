"""napari writer: File > Save Selected Layers of one image and its instance Labels layers into a training set.

The target path is a canonical dataset folder (``annotations.json`` + ``images/``, what ``gains train DIR``
reads): made on the first save, extended on later ones, the image replaced when saved again under its name
(``gains.napari.training.add_to_training_set``, the Train widget's own path). So a dataset folder opened in
napari (the gains reader), corrected with the label tools and saved back to a new folder is a new training set.

- **Instances:** every label value of every selected Labels layer (overlapping instances live in different
  layers, as the reader and the Segment widget make them).
- **Categories:** a value keeps the category its layer's ``features`` table names (reader and widget layers
  carry the categories in ``metadata["gains_categories"]``); a value painted by hand gets the first category.
- **Plane:** a stack is saved at the plane its results were placed on (``metadata["gains_plane"]``).
- **File name:** ``<image layer name>[_<plane>].tif``, in the image's own dtype.
No Qt import here; napari is not imported either (the layer data arrive as tuples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gains.errors import InputError
from gains.napari.layers import LayerData
from gains.napari.planes import plane_pixels
from gains.napari.training import DEFAULT_CATEGORY, add_to_training_set, instances_of_layers, training_file_name

FILE_SUFFIXES = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg", ".zarr", ".json", ".csv", ".svg", ".npy", ".zip"})


def _categories(labels: list[tuple[np.ndarray, dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[int]]:
    """The categories named by the layers' metadata (else ``DEFAULT_CATEGORY``), and one category id per instance
    in ``instances_of_layers`` order (layer by layer, label values ascending)."""
    cats: list[dict[str, Any]] = []
    for _, attrs in labels:
        for c in (attrs.get("metadata") or {}).get("gains_categories", []):
            if int(c["id"]) not in {int(k["id"]) for k in cats}:
                cats.append({"id": int(c["id"]), "name": str(c["name"])})
    cats = cats or [dict(DEFAULT_CATEGORY)]
    by_name = {c["name"]: c["id"] for c in cats}
    ids: list[int] = []
    for data, attrs in labels:
        features = attrs.get("features")  # a pandas DataFrame from napari, a dict of columns from the reader
        named: dict[int, int] = {}
        if features is not None and {"index", "category"} <= set(getattr(features, "columns", features)):
            named = {int(i): by_name[str(n)] for i, n in zip(features["index"], features["category"], strict=True)
                     if str(n) in by_name}
        values = np.unique(np.asarray(data))
        ids += [named.get(int(v), cats[0]["id"]) for v in values if v != 0]
    return cats, ids


def write_training_set(path: str, layer_data: list[LayerData]) -> list[str]:
    """npe2 writer (layer types ``image`` and ``labels+``): add the image and its instances to the dataset folder
    ``path`` (module docstring); returns ``[path]``.

    Raises:
        InputError: not one image layer with Labels layers, a stack without a placed plane, layers of another size
            than the image, no instances, or a path that is not a dataset folder of ours.
    """
    folder = Path(path)
    if folder.suffix.lower() in FILE_SUFFIXES:
        raise InputError(f"{folder}: a training set is a folder; give a path without a file extension")
    images = [(d, a) for d, a, kind in layer_data if kind == "image"]
    labels = [(d, a) for d, a, kind in layer_data if kind == "labels"]
    if len(images) != 1 or not labels:
        raise InputError(f"{folder}: select one image layer and its instance Labels layers to save a training set "
                         f"(got {len(images)} image and {len(labels)} Labels layers)")
    data, attrs = images[0]
    rgb = bool(attrs.get("rgb", False))
    data = data[0] if attrs.get("multiscale") else data
    index = tuple(int(i) for i in (labels[0][1].get("metadata") or {}).get("gains_plane", ()))
    lead = len(data.shape) - (3 if rgb else 2)
    if len(index) != lead:
        if lead > 0 and all(n == 1 for n in data.shape[:lead]):
            index = (0,) * lead
        else:
            raise InputError(f"{attrs.get('name')!r}: a stack of shape {tuple(data.shape)}; segment the plane to save "
                             "first (its result layers record the plane)")
    pixels = plane_pixels(data, rgb, index)
    names = [str(a.get("name", k)) for k, (_, a) in enumerate(labels)]
    masks = instances_of_layers([d for d, _ in labels], pixels.shape[:2], names)
    categories, ids = _categories(labels)
    add_to_training_set(folder, training_file_name(str(attrs.get("name", "image")), index), pixels, masks,
                        categories, ids)
    return [str(folder)]
