"""COCO instance annotations, validated item by item: the one loader every room reads them with.

Every problem raises ``InputError`` with one line naming the file and the image or annotation id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gains.core.checks import check_id
from gains.core.images import image_size, read_image
from gains.core.masks import MaskCrop, crop_bbox, crop_to_rle, segmentation_to_crop
from gains.core.planes import DATASET_PLANE, PlaneChoice, dataset_plane
from gains.errors import InputError
from gains.jsonfile import parse_json


@dataclass(frozen=True)
class CocoImage:
    """One ``images`` entry; height/width are None when the JSON omits them; ``plane``: the plane of the file the
    entry's optional keys ``z``, ``t``, ``channels``, ``axes`` pick (``gains.core.planes.dataset_plane``)."""

    id: int
    file_name: str
    height: int | None
    width: int | None
    plane: PlaneChoice = DATASET_PLANE


@dataclass
class CocoAnnotations:
    """A parsed COCO instances file: images in file order and their annotations in file order."""

    path: Path
    images: list[CocoImage]
    anns_by_image: dict[int, list[dict[str, Any]]]
    category_ids: set[int]
    sha256: str
    categories: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def _int_field(obj: dict[str, Any], key: str, where: str) -> int:
    try:
        return check_id(obj.get(key), key)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from exc


def load_coco(path: str | Path) -> CocoAnnotations:
    """Parse and check a COCO instances JSON.

    Checks: the JSON parses; ``images``, ``annotations``, ``categories`` are lists; ids are integers
    and unique; every annotation names an existing image and a known category and has a segmentation.

    Raises:
        InputError: the first problem found, as one line.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read annotations ({exc.strerror})") from exc
    data = parse_json(raw, path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: top level must be a JSON object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise InputError(f"{path}: '{key}' must be a list")
    cats: set[int] = set()
    for cat in data["categories"]:
        cid = _int_field(cat, "id", f"{path}: category {cat.get('id')!r}") if isinstance(cat, dict) else None
        if cid is None:
            raise InputError(f"{path}: every category must be an object with an integer 'id'")
        if cid in cats:
            raise InputError(f"{path}: duplicate category id {cid}")
        cats.add(cid)
    images: list[CocoImage] = []
    seen_images: set[int] = set()
    for img in data["images"]:
        if not isinstance(img, dict):
            raise InputError(f"{path}: every image must be an object")
        iid = _int_field(img, "id", f"{path}: image {img.get('id')!r}")
        if iid in seen_images:
            raise InputError(f"{path}: duplicate image id {iid}")
        seen_images.add(iid)
        name = img.get("file_name")
        if not isinstance(name, str) or not name:
            raise InputError(f"{path}: image {iid}: missing 'file_name'")
        h, w = img.get("height"), img.get("width")
        if h is not None or w is not None:
            h = _int_field(img, "height", f"{path}: image {iid}")
            w = _int_field(img, "width", f"{path}: image {iid}")
            if h <= 0 or w <= 0:
                raise InputError(f"{path}: image {iid}: height and width must be positive")
        images.append(CocoImage(iid, name, h, w, dataset_plane(img, f"{path}: image {iid}")))
    by_image: dict[int, list[dict[str, Any]]] = {img.id: [] for img in images}
    seen_anns: set[int] = set()
    for ann in data["annotations"]:
        if not isinstance(ann, dict):
            raise InputError(f"{path}: every annotation must be an object")
        aid = _int_field(ann, "id", f"{path}: annotation {ann.get('id')!r}")
        where = f"{path}: annotation {aid}"
        if aid in seen_anns:
            raise InputError(f"{where}: duplicate annotation id")
        seen_anns.add(aid)
        iid = _int_field(ann, "image_id", where)
        if iid not in by_image:
            raise InputError(f"{where}: image_id {iid} is not in 'images'")
        cid = _int_field(ann, "category_id", where)
        if cid not in cats:
            raise InputError(f"{where}: unknown category_id {cid}")
        if "segmentation" not in ann:
            raise InputError(f"{where}: no 'segmentation'")
        by_image[iid].append(ann)
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    return CocoAnnotations(path, images, by_image, cats, hashlib.sha256(raw).hexdigest(), data["categories"], info)


def resolve_image(image_dir: Path, file_name: str, where: str) -> Path:
    """``image_dir / file_name``, refusing names that escape the folder (``../``, absolute paths) or hold a NUL."""
    if "\0" in file_name:
        raise InputError(f"{where}: file_name {file_name!r} contains a NUL byte")
    root = image_dir.resolve()
    target = (root / file_name).resolve()
    if root != target and root not in target.parents:
        raise InputError(f"{where}: file_name {file_name!r} escapes the image folder {image_dir}")
    return target


def annotation_crop(path: Path, ann: dict[str, Any], height: int, width: int) -> MaskCrop | None:
    """The mask crop of one annotation of ``path`` on a (height, width) image (None when empty).

    Raises:
        InputError: a segmentation ``segmentation_to_crop`` refuses, as ``FILE: annotation ID (image ID): why``.
    """
    try:
        return segmentation_to_crop(ann["segmentation"], height, width)
    except ValueError as exc:
        raise InputError(f"{path}: annotation {ann['id']} (image {ann['image_id']}): {exc}") from exc


def checked_image_file(coco: CocoAnnotations, image: CocoImage, image_dir: Path) -> tuple[Path, int, int]:
    """(file, height, width) of an image entry, from the file's header: the file exists, is readable, gives the
    entry's one plane (``image.plane``) and that plane has the JSON's size.

    Raises:
        InputError: path escaping ``image_dir``, missing/unreadable file, several planes, size different from the
            JSON.
    """
    file = resolve_image(image_dir, image.file_name, f"{coco.path}: image {image.id}")
    height, width = image_size(file, image.plane)
    _check_size(coco, image, file, height, width)
    return file, height, width


def read_coco_image(coco: CocoAnnotations, image: CocoImage, image_dir: Path) -> np.ndarray:
    """Pixels (H, W) or (H, W, C<=3) of an image entry's plane (``gains.core.images.read_image``), checked
    against the JSON's size: what training, evaluation and figures see of a dataset image.

    Raises:
        InputError: as ``checked_image_file``.
    """
    file = resolve_image(image_dir, image.file_name, f"{coco.path}: image {image.id}")
    pixels = read_image(file, image.plane)
    _check_size(coco, image, file, *pixels.shape[:2])
    return pixels


def _check_size(coco: CocoAnnotations, image: CocoImage, file: Path, height: int, width: int) -> None:
    if image.height is not None and (image.height, image.width) != (height, width):
        raise InputError(f"{coco.path}: image {image.id}: file is {height}x{width} but the JSON says "
                         f"{image.height}x{image.width} ({file})")


def result_entry(crop: MaskCrop, image_id: int, category_id: int, score: float, height: int, width: int
                 ) -> dict[str, Any]:
    """One COCO result entry (what ``gains score`` reads): the crop's compressed RLE in a (height, width)
    image and its pixel-edge xywh box. Every results file is encoded here, so all are scored alike."""
    return {"image_id": image_id, "category_id": category_id, "score": score,
            "segmentation": crop_to_rle(crop, height, width), "bbox": crop_bbox(crop)}
