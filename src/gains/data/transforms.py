"""Paired transforms: image, masks, boxes and GA maps move together.

Contract (torchvision detection style): ``image`` is a float32 Tensor[C, H, W] in [0, 1]; ``target``
holds ``masks`` uint8 [N, H, W], ``ga_maps`` float32 [N, H, W] (GAInS targets only: a baseline's targets
carry none; either stack may come as a ``CropStack``, which flips and turns move without a pass over
[N, H, W]), ``boxes`` float32 [N, 4] xyxy
(pixel-edge coordinates: a mask whose pixels span columns c0..c1 has x0 = c0, x1 = c1 + 1), plus
per-instance ``labels``, ``area``, ``iscrowd``, ``annotation_ids``. Resizing recomputes boxes and areas
from the resized masks, so they always agree, and drops instances whose mask vanishes with all their
fields; flips and rotations keep every pixel, so they move the boxes arithmetically (exactly what
recomputing would give, without a pass over the [N, H, W] masks). GA maps are resized bilinearly (align_corners=False),
masks with nearest neighbour at pixel centres ("nearest-exact", the same sampling grid).
Randomness comes from torch's global generator (seed it, or let DataLoader seed its workers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from gains.data.crops import dense

Target = dict[str, Any]
PER_INSTANCE = ("boxes", "labels", "masks", "ga_maps", "area", "iscrowd", "annotation_ids")
MAPS = ("masks", "ga_maps")


def _moved(target: Target, move: Any, boxes: torch.Tensor) -> Target:
    """``target`` with ``move`` applied to each [N, H, W] map stack it holds, and ``boxes`` as given."""
    return dict(target, boxes=boxes, **{k: move(target[k]) for k in MAPS if k in target})


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """xyxy float32 boxes [N, 4] of uint8/bool masks [N, H, W] (zeros for empty masks)."""
    n = masks.shape[0]
    if n == 0:
        return torch.zeros((0, 4), dtype=torch.float32)
    m = masks.bool()
    rows, cols = m.any(dim=2), m.any(dim=1)
    h, w = m.shape[1:]
    ar_r = torch.arange(h).expand(n, h)
    ar_c = torch.arange(w).expand(n, w)
    big = torch.iinfo(torch.int64).max
    y0 = torch.where(rows, ar_r, big).min(dim=1).values
    y1 = torch.where(rows, ar_r, -1).max(dim=1).values + 1
    x0 = torch.where(cols, ar_c, big).min(dim=1).values
    x1 = torch.where(cols, ar_c, -1).max(dim=1).values + 1
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    return torch.where(rows.any(dim=1, keepdim=True), boxes, torch.zeros_like(boxes))


def refresh(target: Target) -> Target:
    """Recompute boxes and areas from masks and drop instances whose mask is empty."""
    masks = target["masks"]
    area = torch.count_nonzero(masks.flatten(1), dim=1) if masks.numel() else torch.zeros(masks.shape[0],
                                                                                         dtype=torch.int64)
    keep = area > 0
    out = dict(target)
    for key in PER_INSTANCE:
        if key in out:
            out[key] = out[key][keep]
    out["boxes"] = boxes_from_masks(out["masks"])
    out["area"] = area[keep].float()
    return out


def flip_boxes(boxes: torch.Tensor, dims: Sequence[int], height: int, width: int) -> torch.Tensor:
    """xyxy boxes [N, 4] of an image [.., height, width] flipped along ``dims`` (-1 horizontal, -2 vertical)."""
    out = boxes.clone()
    if -1 in dims:
        out[:, [0, 2]] = width - boxes[:, [2, 0]]
    if -2 in dims:
        out[:, [1, 3]] = height - boxes[:, [3, 1]]
    return out


def rot90_boxes(boxes: torch.Tensor, k: int, height: int, width: int) -> torch.Tensor:
    """xyxy boxes [N, 4] after ``torch.rot90(.., k, dims=(-2, -1))`` of an image [.., height, width]: each
    quarter turn sends pixel (row r, column c) to (width - 1 - c, r)."""
    for _ in range(k % 4):
        boxes = torch.stack([boxes[:, 1], width - boxes[:, 2], boxes[:, 3], width - boxes[:, 0]], dim=1)
        height, width = width, height
    return boxes


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Any]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
        for t in self.transforms:
            image, target = t(image, target)
        return image, target


class ResizeShortestEdge:
    """Resize so the short side is a size drawn from ``sizes`` and the long side is at most ``max_size``."""

    def __init__(self, sizes: Sequence[int], max_size: int) -> None:
        if not sizes or min(sizes) <= 0 or max_size <= 0:
            raise ValueError("sizes and max_size must be positive")
        self.sizes, self.max_size = list(sizes), max_size

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        size = self.sizes[int(torch.randint(len(self.sizes), (1,)))]
        scale = min(size / min(h, w), self.max_size / max(h, w))
        return max(1, round(h * scale)), max(1, round(w * scale))

    def __call__(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
        h, w = image.shape[-2:]
        oh, ow = self.output_size(h, w)
        if (oh, ow) == (h, w):
            return image, target
        image = F.interpolate(image[None], size=(oh, ow), mode="bilinear", align_corners=False)[0].clamp(0, 1)
        out = dict(target)
        n = target["masks"].shape[0]
        out["masks"] = (F.interpolate(dense(target["masks"])[None], size=(oh, ow), mode="nearest-exact")[0] if n
                        else torch.zeros((0, oh, ow), dtype=torch.uint8))
        if "ga_maps" in target:
            out["ga_maps"] = (F.interpolate(dense(target["ga_maps"])[None], size=(oh, ow), mode="bilinear",
                                            align_corners=False)[0] if n else torch.zeros((0, oh, ow)))
        return image, refresh(out)


class RandomFlip:
    """Flip horizontally with probability ``horizontal`` and vertically with probability ``vertical``."""

    def __init__(self, horizontal: float = 0.5, vertical: float = 0.0) -> None:
        self.horizontal, self.vertical = horizontal, vertical

    def __call__(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
        dims = []
        if float(torch.rand(1)) < self.horizontal:
            dims.append(-1)
        if float(torch.rand(1)) < self.vertical:
            dims.append(-2)
        if not dims:
            return image, target
        h, w = image.shape[-2:]
        return image.flip(dims), _moved(target, lambda m: m.flip(dims), flip_boxes(target["boxes"], dims, h, w))


class RandomRot90:
    """Rotate by k * 90 degrees, k uniform in {0, 1, 2, 3}, with probability ``p`` (else unchanged)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
        if float(torch.rand(1)) >= self.p:
            return image, target
        k = int(torch.randint(1, 4, (1,)))
        h, w = image.shape[-2:]
        out = _moved(target, lambda m: m.rot90(k, dims=(-2, -1)), rot90_boxes(target["boxes"], k, h, w))
        return image.rot90(k, dims=(-2, -1)).contiguous(), out


class PhotometricJitter:
    """Random brightness (additive), contrast (multiplicative about the mean) and gamma; image only."""

    def __init__(self, brightness: float = 0.1, contrast: float = 0.2, gamma: float = 0.2) -> None:
        self.brightness, self.contrast, self.gamma = brightness, contrast, gamma

    def __call__(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
        def uniform(a: float) -> float:
            return float(torch.empty(1).uniform_(-a, a)) if a > 0 else 0.0

        mean = image.mean()
        image = (image - mean) * (1.0 + uniform(self.contrast)) + mean + uniform(self.brightness)
        image = image.clamp(0, 1) ** float(torch.exp(torch.tensor(uniform(self.gamma))))
        return image, target
