"""One image of a COCO dataset made ready for GAMM: its file checked and its annotations rasterised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gains.core.checks import check_bbox
from gains.core.coco import CocoAnnotations, CocoImage, checked_image_file
from gains.core.masks import MaskCrop, segmentation_to_crop
from gains.errors import InputError
from gains.gamm.maps import InstanceInput


def _bbox(ann: dict[str, Any], crop: MaskCrop, height: int, width: int) -> tuple[float, float, float, float]:
    """The annotation's xywh ``bbox`` (checked, ``gains.core.checks``), else the mask's own box."""
    bbox = ann.get("bbox")
    if bbox is not None:
        return check_bbox(bbox, height, width)
    return (float(crop.x0), float(crop.y0), float(crop.x1 - crop.x0), float(crop.y1 - crop.y0))


def prepare_image(
    coco: CocoAnnotations, image: CocoImage, image_dir: Path, skip_invalid: bool = False
) -> tuple[int, int, list[InstanceInput], list[str]]:
    """Check one image and rasterise its annotations.

    Returns:
        (height, width, instances in JSON order, problems skipped). With ``skip_invalid`` a bad
        annotation is left out and reported in the list; otherwise it raises.

    Raises:
        InputError: missing/unreadable image, size mismatch with the JSON, malformed or degenerate
            segmentation, empty mask (annotation problems only without ``skip_invalid``).
    """
    _, height, width = checked_image_file(coco, image, image_dir)
    instances: list[InstanceInput] = []
    skipped: list[str] = []
    for ann in coco.anns_by_image[image.id]:
        where = f"{coco.path}: annotation {ann['id']} (image {image.id})"
        try:
            crop = segmentation_to_crop(ann["segmentation"], height, width)
            if crop is None:
                raise ValueError("empty mask (no pixel inside the segmentation)")
            bbox = _bbox(ann, crop, height, width)
        except ValueError as exc:
            if not skip_invalid:
                raise InputError(f"{where}: {exc}") from exc
            skipped.append(f"{where}: {exc}")
            continue
        instances.append(InstanceInput(int(ann["id"]), int(ann["category_id"]), crop, bbox))
    return height, width, instances, skipped
