"""Any COCO instances file (polygons, RLE, uncompressed RLE) -> the canonical form.

Polygons are rasterised with pycocotools (the rule training masks use everywhere else); images are
checked against the JSON's size and copied byte for byte, keeping their plane keys (``gains.core.images``);
images and annotations are renumbered from 1 in file order, the old annotation id kept as ``orig_id``; extra
annotation keys are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gains.core.coco import checked_image_file, load_coco
from gains.core.masks import MaskCrop, decode_rle_mask, segmentation_rle, tight_crop
from gains.data.canonical import Sample, write_dataset
from gains.errors import InputError

COMPUTED = {"id", "image_id", "category_id", "segmentation", "bbox", "area", "iscrowd"}


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Bool (H, W) mask of a COCO segmentation with pycocotools' rasterisation.

    Raises:
        ValueError: a segmentation ``gains.core.checks.check_segmentation`` refuses, or a corrupt RLE string.
    """
    return decode_rle_mask(segmentation_rle(segmentation, height, width))


def convert_coco(annotations: str | Path, images_dir: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Normalise a COCO file into a canonical dataset folder; returns its annotations.json.

    Raises:
        InputError: JSON/schema problems, missing or mismatched images, bad or empty segmentations.
    """
    coco = load_coco(annotations)
    images_dir = Path(images_dir)

    def samples():
        for image in coco.images:
            file, h, w = checked_image_file(coco, image, images_dir)
            crops: list[MaskCrop] = []
            cats, extra = [], []
            for ann in coco.anns_by_image[image.id]:
                try:
                    crop = tight_crop(decode_segmentation(ann["segmentation"], h, w))
                except ValueError as exc:
                    raise InputError(f"{coco.path}: annotation {ann['id']}: {exc}") from exc
                if crop is None:
                    raise InputError(f"{coco.path}: annotation {ann['id']}: empty mask")
                crops.append(crop)
                cats.append(int(ann["category_id"]))
                extra.append({"orig_id": ann["id"], **{k: v for k, v in ann.items() if k not in COMPUTED}})
            yield Sample(image.file_name, None, crops, cats, extra, source=file, plane=image.plane)

    return write_dataset(out, samples(), coco.categories, info={"source": f"COCO {coco.path}"}, overwrite=overwrite,
                         inputs=[coco.path, images_dir])
