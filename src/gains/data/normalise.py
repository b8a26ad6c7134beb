"""Any COCO instances file (polygons, RLE, uncompressed RLE) -> the canonical form.

Polygons are rasterised with pycocotools (the rule training masks use everywhere else); images are
checked against the JSON's size and copied byte for byte; images and annotations are renumbered from 1
in file order, the old annotation id kept as ``orig_id``; extra annotation keys are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gains.data.canonical import Sample, write_dataset
from gains.errors import InputError
from gains.gamm.coco import checked_image_file, load_coco
from gains.gamm.raster import MaskCrop, tight_crop

COMPUTED = {"id", "image_id", "category_id", "segmentation", "bbox", "area", "iscrowd"}


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Bool (H, W) mask of a COCO segmentation with pycocotools' rasterisation.

    Raises:
        ValueError: malformed polygon or RLE, or an RLE of another size.
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        polys = []
        for poly in segmentation:
            arr = np.asarray(poly, dtype=np.float64).ravel()
            if arr.size < 6 or arr.size % 2 or not np.all(np.isfinite(arr)):
                raise ValueError("polygon needs an even number (>= 6) of finite coordinates")
            polys.append(arr.tolist())
        if not polys:
            raise ValueError("segmentation has no polygon")
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if [int(v) for v in segmentation["size"]] != [height, width]:
            raise ValueError(f"RLE size {segmentation['size']} differs from the image size [{height}, {width}]")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if sum(counts) != height * width:
                raise ValueError("uncompressed RLE counts do not add up to height * width")
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
    else:
        raise ValueError("segmentation must be a list of polygons or an RLE object")
    try:
        return mask_utils.decode(rle).astype(bool)
    except Exception as exc:
        raise ValueError(f"corrupt RLE: {exc}") from exc


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
            yield Sample(image.file_name, None, crops, cats, extra, source=file)

    return write_dataset(out, samples(), coco.categories, info={"source": f"COCO {coco.path}"}, overwrite=overwrite)
