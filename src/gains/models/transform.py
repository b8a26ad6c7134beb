"""``GeneralizedRCNNTransform`` that resizes and pastes GA maps too.

torchvision's transform resizes only boxes and masks (nearest, top-left sampling) and pastes only
masks: GA maps would silently misalign. Here the image, masks and GA maps share one output size and
one sampling grid (bilinear / nearest-exact at pixel centres, align_corners=False); boxes are
scaled by the same ratios. Masks and GA maps may come as a ``MapStack`` (crops) instead of a tensor; they
are then built at the output size directly. At inference, predicted GA maps are pasted into the original
image like masks (value 1 = no anomaly outside the box).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes


class MapStack(Protocol):
    """Per-instance maps of an image kept compact until the transform needs them (``gains.data.crops.CropStack``):
    ``dense()`` -> [N, H, W]; ``resized(oh, ow, mode)`` -> [N, oh, ow] with the pixels of
    ``F.interpolate(dense()[None], (oh, ow), mode=mode)[0]`` (``mode`` "nearest-exact" or "bilinear")."""

    def dense(self) -> torch.Tensor: ...

    def resized(self, height: int, width: int, mode: str) -> torch.Tensor: ...


class GainsTransform(GeneralizedRCNNTransform):
    """Normalise, resize and batch images: short side drawn from ``train_sizes`` in training and
    ``test_size`` otherwise, long side at most ``max_size``; at test time with ``test_scale`` set, every
    image is scaled by that factor instead, whatever its size. ``train_resize`` False: training images are taken
    at the size they come in (patch training: the dataset already cut them at the network scale,
    ``gains.data.patch``)."""

    def __init__(self, train_sizes: list[int], test_size: int, max_size: int, image_mean: list[float],
                 image_std: list[float], test_scale: float | None = None) -> None:
        super().__init__(tuple(train_sizes), max_size, image_mean, image_std)
        self.test_size = test_size
        self.test_scale = test_scale
        self.paste = True  # False: keep RoI-sized masks/GA maps (the predictor pastes them per instance)
        self.train_resize = True

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        if self.training and not self.train_resize:
            return h, w
        if not self.training and self.test_scale is not None:
            scale = float(self.test_scale)
        else:
            size = float(self.torch_choice(list(self.min_size))) if self.training else float(self.test_size)
            scale = min(size / min(h, w), float(self.max_size) / max(h, w))
        return max(1, round(h * scale)), max(1, round(w * scale))

    def resize(self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        h, w = image.shape[-2:]
        oh, ow = self.output_size(h, w)
        resized = (oh, ow) != (h, w)
        if resized:
            image = F.interpolate(image[None], size=(oh, ow), mode="bilinear", align_corners=False)[0]
        if target is None:
            return image, target
        target = dict(target)
        if resized:
            target["boxes"] = resize_boxes(target["boxes"], [h, w], [oh, ow])
        for key, mode in (("masks", "nearest-exact"), ("ga_maps", "bilinear")):
            maps = target.get(key)
            if maps is None:
                continue
            if not isinstance(maps, torch.Tensor):  # a MapStack: built dense at the output size
                stack: MapStack = maps
                target[key] = stack.resized(oh, ow, mode) if resized else stack.dense()
            elif not resized:
                continue
            elif not maps.shape[0]:
                target[key] = maps.new_zeros((0, oh, ow))
            elif key == "masks":  # uint8 in and out: no float copy
                target[key] = F.interpolate(maps.to(torch.uint8)[None], size=(oh, ow), mode=mode)[0]
            else:
                target[key] = F.interpolate(maps[None].float(), size=(oh, ow), mode=mode, align_corners=False)[0]
        return image, target

    def postprocess(self, result: list[dict[str, torch.Tensor]], image_shapes: list[tuple[int, int]],
                    original_image_sizes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        if self.training:
            return result
        for i, (pred, im_s, o_im_s) in enumerate(zip(result, image_shapes, original_image_sizes, strict=True)):
            boxes = resize_boxes(pred["boxes"], im_s, o_im_s)
            result[i]["boxes"] = boxes
            if not self.paste:
                continue
            if "masks" in pred:
                result[i]["masks"] = paste_masks_in_image(pred["masks"], boxes, o_im_s)
            if "ga_maps" in pred:
                result[i]["ga_maps"] = paste_masks_in_image(pred["ga_maps"] - 1.0, boxes, o_im_s) + 1.0
        return result
