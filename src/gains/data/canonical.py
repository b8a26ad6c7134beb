"""The canonical dataset form: ``annotations.json`` (COCO, compressed RLE) + ``images/``.

Ids start at 1; ``bbox`` (xywh, pixel extent) and ``area`` (pixel count) are computed from the mask,
so they always agree with it. Overlapping instances are kept exactly: each is its own RLE.
A dataset is written into a temporary sibling folder and renamed at the end: no partial output.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gains.atomic import atomic_write
from gains.core.images import TIFF_SUFFIXES, encode_tiff, image_size
from gains.core.masks import MaskCrop, crop_bbox, crop_to_rle, tight_crop
from gains.core.planes import DATASET_PLANE, PlaneChoice, plane_keys
from gains.errors import InputError
from gains.outputs import staged_folder


@dataclass
class Sample:
    """One image and its instances, ready to be written.

    Attributes:
        file_name: path under ``images/``.
        image: pixels (H, W) or (H, W, C), uint8 or uint16; None when ``source`` is given.
        masks: per-instance bool (H, W) masks or tight ``MaskCrop``s (may overlap).
        category_ids: per-instance COCO category ids.
        extra: per-instance dicts merged into each annotation (e.g. CTO relations).
        source: an image file copied byte for byte instead of encoding ``image``.
        plane: the plane of ``source`` the image is (its keys go into the image entry; ``gains.core.images``).
    """

    file_name: str
    image: np.ndarray | None
    masks: Sequence[np.ndarray | MaskCrop]
    category_ids: Sequence[int]
    extra: Sequence[dict[str, Any]] = field(default_factory=list)
    source: Path | None = None
    plane: PlaneChoice = DATASET_PLANE


def _write_image(path: Path, image: np.ndarray) -> None:
    if path.suffix.lower() in TIFF_SUFFIXES:
        payload = encode_tiff(image)
        atomic_write(path, lambda fh: fh.write(payload))
        return
    from PIL import Image

    pil = Image.fromarray(image)
    atomic_write(path, lambda fh: pil.save(fh, format="PNG"))


def write_dataset(
    out: str | Path, samples: Iterable[Sample], categories: Sequence[dict[str, Any]],
    info: dict[str, Any] | None = None, overwrite: bool = False, inputs: Sequence[str | Path | None] = (),
) -> Path:
    """Write a canonical dataset folder; returns the path of its ``annotations.json``.

    ``inputs``: the files and folders the samples are read from; ``out`` must lie apart from them.

    Raises:
        InputError: ``out`` collides with an input, exists and is not empty (without ``overwrite``) or is not a
            dataset folder of ours, or an instance mask is empty or of another size than its image.
    """
    out = Path(out)
    with staged_folder(out, overwrite, "dataset", inputs) as tmp:
        images, anns = [], []
        for image_id, sample in enumerate(samples, start=1):
            if sample.source is not None:
                h, w = image_size(sample.source, sample.plane)
                (tmp / "images" / sample.file_name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(sample.source, tmp / "images" / sample.file_name)
            else:
                h, w = sample.image.shape[:2]
                _write_image(tmp / "images" / sample.file_name, sample.image)
            images.append({"id": image_id, "file_name": sample.file_name, "height": h, "width": w,
                           **plane_keys(sample.plane)})
            extras = list(sample.extra) or [{} for _ in sample.masks]
            for mask, cat, extra in zip(sample.masks, sample.category_ids, extras, strict=True):
                if not isinstance(mask, MaskCrop):
                    if mask.shape != (h, w):
                        raise InputError(f"{sample.file_name}: mask of shape {mask.shape} for a {h}x{w} image")
                    mask = tight_crop(np.asarray(mask, dtype=bool))
                    if mask is None:
                        raise InputError(f"{sample.file_name}: empty instance mask (category {cat})")
                elif mask.y1 > h or mask.x1 > w:
                    raise InputError(f"{sample.file_name}: instance mask reaches outside the {h}x{w} image")
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(cat),
                             "segmentation": crop_to_rle(mask, h, w), "bbox": crop_bbox(mask),
                             "area": mask.area, "iscrowd": 0, **extra})
        doc = {"info": info or {}, "images": images, "annotations": anns, "categories": list(categories)}
        atomic_write(tmp / "annotations.json", lambda fh: fh.write(json.dumps(doc).encode()))
    return out / "annotations.json"
