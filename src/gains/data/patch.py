"""Patch training: each training sample is one random window of an image, taken at the model's pixel scale.

With ``data.crop_size`` C set, a sample of an H x W image is drawn as follows (``PatchSampler``):

1. **Scale.** s = the model's training scale (``model.test_scale``, the very factor ``gains predict`` applies)
   times a jitter factor ``size / middle``, ``size`` drawn uniformly from ``model.min_size_train`` and ``middle``
   the midpoint of its range ([224, 256, 288]: 0.875, 1 or 1.125; one size: no jitter).
2. **Window.** C / s image pixels on a side (rounded), so the sample is C x C network pixels. A side of the image
   shorter than that is taken whole and brought to round(side * s) pixels: never upscaled beyond s, never padded
   (the model's transform pads a batch to a common size anyway).
3. **Position.** With probability ``data.crop_contacts`` (default 0) the window is centred on where a uniform
   random pair of instances overlaps or touches (one point per pair, ``contact_points``; images without a pair
   skip this); otherwise, with probability ``data.crop_focus``, on a uniform point of a uniform random
   instance's box; else it is placed uniformly. The window is clipped to the image.
4. **Cut.** Instances whose box misses the window are left out before anything is built; masks and GA maps of
   the others are cut from the whole-image crops (``CropStack.cropped``: GA maps are never recomputed on a cut
   instance) and built at the network size only for the window. A cut instance keeps its visible part unless it
   has fewer than ``data.crop_min_area`` network pixels left (then it goes, with its GA map); an instance wholly
   inside the window is kept whatever its size. Boxes are recomputed tight from the cut masks.

The cost of a sample follows C and the instances in the window, not the image's area (the whole image is still
read, and its intensity statistics are fitted once and kept: ``gains.data.dataset``). Randomness comes from
torch's global generator, like the paired transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gains.core.masks import MaskCrop
from gains.core.pairs import contact_regions
from gains.data.crops import CropStack
from gains.data.transforms import PER_INSTANCE, refresh

Target = dict[str, Any]


@dataclass(frozen=True)
class Window:
    """Rows ``y0 : y0 + h`` and columns ``x0 : x0 + w`` of an image, brought to ``out_h`` x ``out_w`` network pixels
    at ``scale``."""

    y0: int
    x0: int
    h: int
    w: int
    out_h: int
    out_w: int
    scale: float

    @property
    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) of the window, to index an (H, W) or (H, W, C) array."""
        return slice(self.y0, self.y0 + self.h), slice(self.x0, self.x0 + self.w)


def contact_points(masks: CropStack) -> np.ndarray:
    """int64 [K, 2] ``(y, x)``: for each pair of ``masks`` (uint8 crops) that overlaps or touches, the pixel of
    where they meet closest to that region's mean (``gains.core.pairs.contact_regions``)."""
    crops = [MaskCrop(int(y0), int(x0), c.astype(bool)) for (y0, x0, _, _), c in zip(masks.boxes, masks.crops,
                                                                                     strict=True)]
    points = []
    for _, (y0, x0, region) in contact_regions(crops).values():
        where = np.argwhere(region)
        nearest = where[np.argmin(((where - where.mean(axis=0)) ** 2).sum(axis=1))]
        points.append((y0 + int(nearest[0]), x0 + int(nearest[1])))
    return np.array(points, dtype=np.int64).reshape(-1, 2)


@dataclass(frozen=True)
class PatchSampler:
    """Draws windows and cuts samples out of whole-image targets; see the module docstring.

    Args:
        crop_size: side of a sample in network pixels.
        scale: the model's training scale (network pixels per image pixel).
        factors: jitter factors of ``scale``, one drawn uniformly per sample.
        focus: probability of a window centred on an instance.
        min_area: network pixels a cut instance needs to stay.
        contacts: probability of a window centred on a contact point, drawn before ``focus``.
    """

    crop_size: int
    scale: float
    factors: tuple[float, ...] = (1.0,)
    focus: float = 0.8
    min_area: int = 16
    contacts: float = 0.0

    @classmethod
    def of(cls, crop_size: int, scale: float, sizes: Sequence[int], focus: float, min_area: int,
           contacts: float = 0.0) -> PatchSampler:
        """A sampler jittering ``scale`` by ``size / middle`` for ``size`` in ``sizes`` (``model.min_size_train``),
        ``middle`` the midpoint of their range."""
        middle = (min(sizes) + max(sizes)) / 2
        return cls(crop_size, scale, tuple(float(s) / middle for s in sizes), focus, min_area, contacts)

    def window(self, height: int, width: int, boxes: np.ndarray, points: np.ndarray | None = None) -> Window:
        """A random window of an ``height`` x ``width`` image whose instances have ``boxes`` (int [N, 4] ``(y0, x0,
        h, w)``, a ``CropStack``'s) and contact ``points`` (int [K, 2] ``(y, x)``, ``contact_points``; None or
        empty: none)."""
        scale = self.scale * self.factors[int(torch.randint(len(self.factors), (1,)))]
        side = max(1, round(self.crop_size / scale))
        h, out_h = (side, self.crop_size) if side <= height else (height, max(1, round(height * scale)))
        w, out_w = (side, self.crop_size) if side <= width else (width, max(1, round(width * scale)))
        centre: tuple[float, float] | None = None
        if self.contacts > 0 and points is not None and len(points) and float(torch.rand(1)) < self.contacts:
            cy, cx = (float(v) for v in points[int(torch.randint(len(points), (1,)))])
            centre = cy, cx
        elif len(boxes) and float(torch.rand(1)) < self.focus:
            by, bx, bh, bw = (int(v) for v in boxes[int(torch.randint(len(boxes), (1,)))])
            centre = by + float(torch.rand(1)) * bh, bx + float(torch.rand(1)) * bw
        if centre is None:
            y0 = int(torch.randint(height - h + 1, (1,)))
            x0 = int(torch.randint(width - w + 1, (1,)))
        else:
            y0 = min(max(round(centre[0] - h / 2), 0), height - h)
            x0 = min(max(round(centre[1] - w / 2), 0), width - w)
        return Window(y0, x0, h, w, out_h, out_w, scale)

    def cut(self, image: torch.Tensor, target: Target, win: Window) -> tuple[torch.Tensor, Target]:
        """(image [C, out_h, out_w], target at that size) of the window.

        Args:
            image: float32 [C, win.h, win.w], the window's pixels already normalised.
            target: the whole image's target: ``masks`` (and ``ga_maps``) as ``CropStack``s of the image, the other
                per-instance fields as tensors [N, ...].
            win: the window (``window``).

        Returns:
            The image resized bilinearly (align_corners False, as the model's transform resizes), and the target
            with dense ``masks`` uint8 / ``ga_maps`` float32 [M, out_h, out_w], tight ``boxes`` and ``area``.
        """
        size = (win.out_h, win.out_w)
        if size != tuple(image.shape[-2:]):
            image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0].clamp(0, 1)
        masks: CropStack = target["masks"]
        y0, x0, h, w = masks.boxes.T
        touches = (y0 < win.y0 + win.h) & (y0 + h > win.y0) & (x0 < win.x0 + win.w) & (x0 + w > win.x0)
        cut_off = touches & ((y0 < win.y0) | (y0 + h > win.y0 + win.h) | (x0 < win.x0) | (x0 + w > win.x0 + win.w))
        keep = torch.from_numpy(touches)
        out = {k: v[keep] if k in PER_INSTANCE else v for k, v in target.items()}
        for key, mode in (("masks", "nearest-exact"), ("ga_maps", "bilinear")):
            if key in out:
                part = out[key].cropped(win.y0, win.x0, win.h, win.w)
                out[key] = part.dense() if size == (win.h, win.w) else part.resized(*size, mode)
        area = torch.count_nonzero(out["masks"].flatten(1), dim=1)
        stays = ~torch.from_numpy(cut_off[touches]) | (area >= self.min_area)
        return image, refresh({k: v[stays] if k in PER_INSTANCE else v for k, v in out.items()})
