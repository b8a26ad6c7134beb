"""napari reader: a ``gains predict`` output folder or a canonical dataset folder, as layers.

A predict folder holds ``results.json`` + ``images.json`` (``--format coco``) and, when written,
``<stem>_ga.tif``; its images are read from the paths ``images.json`` records (as given to ``gains predict``,
so relative to where it ran, else tried relative to the folder). A dataset folder holds ``annotations.json``
+ ``images/`` (ground truth: no scores, no GA map). Each image gives its image layer (when the file is
found), its instance Labels layers and its GA map (``gains.napari.layers``); only the first image's layers
are visible. No napari import here: the reader returns layer data tuples.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gains.core.coco import load_coco, read_coco_image
from gains.core.images import read_image
from gains.core.masks import Instance, segmentation_to_crop
from gains.core.planes import label_plane
from gains.errors import InputError
from gains.jsonfile import read_json
from gains.napari.layers import LayerData, result_layers


def folder_kind(path: str | Path) -> str | None:
    """``"predict"``, ``"dataset"`` or None (not a folder this reader opens)."""
    path = Path(path)
    if not path.is_dir():
        return None
    if (path / "results.json").is_file() and (path / "images.json").is_file():
        return "predict"
    if (path / "annotations.json").is_file() and (path / "images").is_dir():
        return "dataset"
    return None


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """npe2 reader hook: ``read_folder`` when ``path`` (or each of a list) is a folder we open, else None."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or any(folder_kind(p) is None for p in paths):
        return None
    return read_folder


def read_folder(path: str | list[str]) -> list[LayerData]:
    """Layers of every image of one or more predict/dataset folders (module docstring).

    Raises:
        InputError: unreadable JSON, bad annotations or images (one line naming the file and item).
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        kind = folder_kind(p)
        if kind is None:
            raise InputError(f"{p}: neither a gains predict folder (results.json, images.json) "
                             "nor a dataset folder (annotations.json, images/)")
        layers += read_predict_folder(p) if kind == "predict" else read_dataset_folder(p)
    for k, (_, kwargs, _) in enumerate(layers):
        kwargs.setdefault("visible", k < _first_image_count(layers))
    return layers


def _first_image_count(layers: list[LayerData]) -> int:
    """How many leading layers belong to the first image (they share its ``metadata["gains_image"]``)."""
    first = layers[0][1]["metadata"]["gains_image"] if layers else None
    return next((k for k, layer in enumerate(layers) if layer[1]["metadata"]["gains_image"] != first), len(layers))


def _tag(layers: list[LayerData], image: str) -> list[LayerData]:
    for _, kwargs, _ in layers:
        kwargs["metadata"] = {**kwargs.get("metadata", {}), "gains_image": image}
    return layers


def _find_image(folder: Path, file_name: str) -> Path | None:
    for candidate in (Path(file_name), folder / file_name, folder / Path(file_name).name):
        if candidate.is_file():
            return candidate
    return None


def read_predict_folder(folder: str | Path) -> list[LayerData]:
    """Layers of a ``gains predict`` output folder (needs ``--format coco``; ``ga`` adds the GA maps)."""
    folder = Path(folder)
    doc, results = read_json(folder / "images.json"), read_json(folder / "results.json")
    try:
        images = [(int(i["id"]), str(i["file_name"]), int(i["height"]), int(i["width"]), str(i.get("plane", "")))
                  for i in doc["images"]]
        categories = list(doc.get("categories", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{folder / 'images.json'}: not a gains predict images file ({exc!r})") from exc
    by_image: dict[int, list[Instance]] = {iid: [] for iid, *_ in images}
    sizes = {iid: (h, w) for iid, _, h, w, _ in images}
    for k, r in enumerate(results if isinstance(results, list) else []):
        where = f"{folder / 'results.json'}: result {k}"
        try:
            iid = int(r["image_id"])
            crop = segmentation_to_crop(r["segmentation"], *sizes[iid])
            inst = Instance(int(r["category_id"]), float(r["score"]), crop, None)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: {exc!r}") from exc
        if crop is not None:
            by_image[iid].append(inst)
    layers: list[LayerData] = []
    for iid, file_name, h, w, plane in images:
        stem = f"{Path(file_name).stem}_{plane}" if plane else Path(file_name).stem
        file = _find_image(folder, file_name)
        pixels = read_image(file, label_plane(plane)) if file is not None else None
        ga_file = folder / f"{stem}_ga.tif"
        ga = read_image(ga_file) if ga_file.is_file() else None
        instances = sorted(by_image[iid], key=lambda i: -i.score)
        layers += _tag(result_layers(pixels, instances, categories, stem, h, w, ga=ga), stem)
    return layers


def read_dataset_folder(folder: str | Path) -> list[LayerData]:
    """Ground-truth layers of a canonical dataset folder (``annotations.json`` + ``images/``)."""
    folder = Path(folder)
    coco = load_coco(folder / "annotations.json")
    layers: list[LayerData] = []
    for image in coco.images:
        pixels = read_coco_image(coco, image, folder / "images")
        h, w = pixels.shape[:2]
        instances = []
        for ann in coco.anns_by_image.get(image.id, []):
            try:
                crop = segmentation_to_crop(ann["segmentation"], h, w)
            except ValueError as exc:
                raise InputError(f"{coco.path}: annotation {ann.get('id')} (image {image.id}): {exc}") from exc
            if crop is not None:
                instances.append(Instance(int(ann["category_id"]), 1.0, crop, None))
        stem = Path(image.file_name).stem
        layers += _tag(result_layers(pixels, instances, coco.categories, stem, h, w, scores=False), stem)
    return layers
