"""Dataset statistics: images, instances, per-image counts, overlapping, crossing and touching pairs, object size."""

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
# the smaller of two pieces an instance is cut into, as a share of its area, for the pair to count as crossing
CUT_SHARE = 0.1


def _shared_frame(a: MaskCrop, b: MaskCrop) -> tuple[np.ndarray, np.ndarray] | None:
    """Both masks pasted into the frame of their joint box grown by 2 pixels (bool (h, w) each), or None when
    their boxes, grown by one pixel, do not meet (the masks can neither overlap nor touch)."""
    r0, r1 = max(a.y0, b.y0) - 1, min(a.y1, b.y1) + 1
    c0, c1 = max(a.x0, b.x0) - 1, min(a.x1, b.x1) + 1
    if r0 >= r1 or c0 >= c1:
        return None
    top, left = min(a.y0, b.y0) - 1, min(a.x0, b.x0) - 1
    h, w = max(a.y1, b.y1) + 1 - top, max(a.x1, b.x1) + 1 - left

    def place(m: MaskCrop) -> np.ndarray:
        out = np.zeros((h, w), dtype=bool)
        out[m.y0 - top : m.y1 - top, m.x0 - left : m.x1 - left] = m.mask
        return out

    return place(a), place(b)


def _cut_in_two(mask: np.ndarray, other: np.ndarray) -> bool:
    """Whether ``other`` cuts ``mask`` into two or more pieces, the second largest holding at least
    ``CUT_SHARE`` of the mask's area (a rod crossed by another, not a sliver left at an edge)."""
    labels, n = ndimage.label(mask & ~other, CROSS)
    if n < 2:
        return False
    sizes = np.sort(np.bincount(labels.ravel())[1:])
    return bool(sizes[-2] >= CUT_SHARE * mask.sum())


def pair_relation(a: MaskCrop, b: MaskCrop) -> str | None:
    """How two instance masks meet: 'cross' when they overlap and one cuts the other into two or more pieces
    (``_cut_in_two``: crossing rods), 'overlap' when they share a pixel otherwise, 'touch' when they are
    4-adjacent only, else None."""
    frame = _shared_frame(a, b)
    if frame is None:
        return None
    pa, pb = frame
    if (pa & pb).any():
        return "cross" if _cut_in_two(pa, pb) or _cut_in_two(pb, pa) else "overlap"
    return "touch" if (ndimage.binary_dilation(pa, CROSS) & pb).any() else None


def _instance_diameters(coco: Any) -> list[tuple[Any, list[tuple[int, float]]]]:
    """Per image of a loaded COCO file: (image, (category id, equivalent diameter ``2 * sqrt(area / pi)`` in image
    pixels) of each of its instances).

    Raises:
        InputError: an image without height/width, an annotation without a usable area or bbox.
    """
    out = []
    for image in coco.images:
        if image.height is None or image.width is None:
            raise InputError(f"{coco.path}: image {image.id} has no height/width")
        out.append((image, [(a["category_id"], 2.0 * np.sqrt(_area(coco.path, a, image.height, image.width) / np.pi))
                            for a in coco.anns_by_image[image.id]]))
    return out


def object_sizes(annotations: str | Path) -> dict[int, float]:
    """Per category id: the median equivalent diameter ``2 * sqrt(area / pi)`` of its instances, in image pixels
    (categories without instances left out).

    Raises:
        InputError: as ``training_scale``, or no annotation at all.
    """
    coco = load_coco(annotations)
    by_category: dict[int, list[float]] = {}
    for _, sizes in _instance_diameters(coco):
        for category, d in sizes:
            by_category.setdefault(category, []).append(d)
    if not by_category:
        raise InputError(f"{coco.path}: no annotation to measure object sizes on")
    return {c: float(np.median(ds)) for c, ds in sorted(by_category.items())}


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
    for image, sizes in _instance_diameters(coco):
        f = min(test_size / min(image.height, image.width), max_size / max(image.height, image.width))
        factors.append(f)
        diameters.extend(d * f for _, d in sizes)
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
        images without instances, overlap_pairs, cross_pairs (the overlapping pairs in which one instance cuts
        the other in two, ``pair_relation``) and touch_pairs (pairs of instances of the same image and
        category), and the
        number of instances flagged in ``cto`` records when the file has them.
    """
    coco = load_coco(annotations)
    names = {c["id"]: c.get("name", str(c["id"])) for c in coco.categories}
    per_image, per_cat = [], dict.fromkeys(names.values(), 0)
    overlap = touch = cross = 0
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
                overlap += rel in ("overlap", "cross")
                cross += rel == "cross"
                touch += rel == "touch"
    counts = np.asarray(per_image) if per_image else np.zeros(1, dtype=int)
    out: dict[str, Any] = {
        "images": len(coco.images), "instances": int(counts.sum()), "per_category": per_cat,
        "instances_per_image": {"min": int(counts.min()), "median": float(np.median(counts)), "max": int(counts.max())},
        "images_without_instances": int((counts == 0).sum()), "overlap_pairs": int(overlap), "cross_pairs": int(cross),
        "touch_pairs": int(touch),
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
             f"  of them crossing    {stats['cross_pairs']}",
             f"touching pairs        {stats['touch_pairs']}"]
    if "cto_instances" in stats:
        c = stats["cto_instances"]
        lines.append(f"instances that overlap/touch/cross another (recorded): {c['overlap']}/{c['touch']}/{c['cross']}")
    return "\n".join(lines)
