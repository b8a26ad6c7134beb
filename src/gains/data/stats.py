"""Dataset statistics: images, instances, per-image counts, overlapping and touching pairs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from gains.core.checks import check_bbox, is_number
from gains.core.coco import annotation_crop, load_coco
from gains.core.masks import MaskCrop
from gains.errors import InputError

CROSS = ndimage.generate_binary_structure(2, 1)


def pair_relation(a: MaskCrop, b: MaskCrop) -> str | None:
    """'overlap' when the masks share a pixel, 'touch' when they are 4-adjacent only, else None."""
    r0, r1 = max(a.y0, b.y0) - 1, min(a.y1, b.y1) + 1
    c0, c1 = max(a.x0, b.x0) - 1, min(a.x1, b.x1) + 1
    if r0 >= r1 or c0 >= c1:
        return None
    h, w = r1 - r0, c1 - c0

    def place(m: MaskCrop) -> np.ndarray:
        out = np.zeros((h + 2, w + 2), dtype=bool)
        y0, x0 = m.y0 - r0 + 1, m.x0 - c0 + 1
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + m.mask.shape[0], h + 2), min(x0 + m.mask.shape[1], w + 2)
        out[ys:ye, xs:xe] = m.mask[ys - y0 : ye - y0, xs - x0 : xe - x0]
        return out

    pa, pb = place(a), place(b)
    if (pa & pb).any():
        return "overlap"
    return "touch" if (ndimage.binary_dilation(pa, CROSS) & pb).any() else None


def training_scale(annotations: str | Path, test_size: int, max_size: int) -> tuple[float, float]:
    """(test_scale, object_size) of a training set: the median over images of the resize factor that
    sends an image to ``test_size`` (short side, long side at most ``max_size``), and the median over
    instances of their equivalent diameter ``2 * sqrt(area / pi)`` times their image's factor, in pixels.

    A model trained on these images sees objects of about ``object_size`` pixels; predicting every image
    at ``test_scale`` (whatever its size) is the training set's typical rule.

    Raises:
        InputError: an image without height/width or a set without annotations.
    """
    coco = load_coco(annotations)
    factors, diameters = [], []
    for image in coco.images:
        if image.height is None or image.width is None:
            raise InputError(f"{coco.path}: image {image.id} has no height/width")
        f = min(test_size / min(image.height, image.width), max_size / max(image.height, image.width))
        factors.append(f)
        for a in coco.anns_by_image[image.id]:
            area = _area(coco.path, a, image.height, image.width)
            diameters.append(2.0 * np.sqrt(area / np.pi) * f)
    if not diameters:
        raise InputError(f"{coco.path}: no annotation to measure object sizes on")
    return float(np.median(factors)), float(np.median(diameters))


def _area(path: Path, ann: dict[str, Any], height: int, width: int) -> float:
    """The annotation's ``area``, else (missing or 0) its ``bbox`` width x height.

    Raises:
        InputError: neither a finite non-negative area nor a valid bbox (``gains.core.checks.check_bbox``).
    """
    area = ann.get("area")
    try:
        if area is not None and not (is_number(area) and math.isfinite(area) and area >= 0):
            raise ValueError(f"area must be a finite number >= 0, got {area!r}")
        if area:
            return float(area)
        if ann.get("bbox") is None:
            raise ValueError("no area and no bbox to measure the object size on")
        _, _, w, h = check_bbox(ann["bbox"], height, width)
    except ValueError as exc:
        raise InputError(f"{path}: annotation {ann['id']} (image {ann['image_id']}): {exc}") from exc
    return w * h


def dataset_stats(annotations: str | Path) -> dict[str, Any]:
    """Counts of a canonical (or any COCO) dataset; masks are decoded to find overlap/touch pairs.

    Returns:
        images, instances, per-category instance counts, per-image min/median/max instance counts,
        images without instances, overlap_pairs and touch_pairs (pairs of instances of the same image
        and category), and the
        number of instances flagged in ``cto`` records when the file has them.
    """
    coco = load_coco(annotations)
    names = {c["id"]: c.get("name", str(c["id"])) for c in coco.categories}
    per_image, per_cat = [], dict.fromkeys(names.values(), 0)
    overlap = touch = 0
    cto = {"overlap": 0, "touch": 0, "cross": 0}
    has_cto = False
    for image in coco.images:
        anns = coco.anns_by_image[image.id]
        per_image.append(len(anns))
        for a in anns:
            per_cat[names[a["category_id"]]] += 1
            if isinstance(a.get("cto"), dict):
                has_cto = True
                for k in cto:
                    cto[k] += bool(a["cto"].get(k))
        if image.height is None:
            continue
        crops = [(a["category_id"], annotation_crop(coco.path, a, image.height, image.width)) for a in anns]
        crops = [(cat, c) for cat, c in crops if c is not None]
        for i in range(len(crops)):
            for j in range(i + 1, len(crops)):
                if crops[i][0] != crops[j][0]:  # a cell and its nucleus are not a CTO pair
                    continue
                rel = pair_relation(crops[i][1], crops[j][1])
                overlap += rel == "overlap"
                touch += rel == "touch"
    counts = np.asarray(per_image) if per_image else np.zeros(1, dtype=int)
    out: dict[str, Any] = {
        "images": len(coco.images), "instances": int(counts.sum()), "per_category": per_cat,
        "instances_per_image": {"min": int(counts.min()), "median": float(np.median(counts)), "max": int(counts.max())},
        "images_without_instances": int((counts == 0).sum()), "overlap_pairs": int(overlap), "touch_pairs": int(touch),
    }
    if has_cto:
        out["cto_instances"] = cto
    return out


def format_stats(stats: dict[str, Any]) -> str:
    """A short human-readable table of ``dataset_stats``."""
    ipi = stats["instances_per_image"]
    lines = [f"images                {stats['images']}",
             f"instances             {stats['instances']}",
             *[f"  {name:<19s} {n}" for name, n in stats["per_category"].items()],
             f"instances per image   min {ipi['min']}, median {ipi['median']:g}, max {ipi['max']}",
             f"images w/o instances  {stats['images_without_instances']}",
             f"overlapping pairs     {stats['overlap_pairs']}",
             f"touching pairs        {stats['touch_pairs']}"]
    if "cto_instances" in stats:
        c = stats["cto_instances"]
        lines.append(f"instances that overlap/touch/cross another (recorded): {c['overlap']}/{c['touch']}/{c['cross']}")
    return "\n".join(lines)
