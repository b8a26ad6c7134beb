"""What a host does around an exported graph, written once in Python, with the numbers in the sidecar JSON.
(``gains export-model --to onnx --full`` puts all of it inside the graph instead: ``gains.export.full``.)

An export ``FILE`` comes with ``FILE.json`` (``sidecar_path``). A host (Fiji, QuPath, DeepImageJ, a C++ or Java
program) runs, per image of H x W pixels:

1. **Intensities**: raw pixels -> float32 [3, H, W] in [0, 1] as ``input.intensity`` says (``gains.intensity``):
   ``percentile``: per channel ``(x - p_lo) / (p_hi - p_lo)`` with the image's own percentiles, clipped to
   [0, 1]; ``dtype``: integers / dtype maximum; ``fixed``: ``(x - min) / (max - min)``, clipped. Grey is
   replicated to 3 channels, two channels become (c0, c1, c0), channels beyond the third are dropped.
2. **Scale**: resize to ``network_size`` (h, w): with ``input.test_scale`` s, ``h = max(1, round(H * s))`` and
   likewise w (Python's round: halves to even); without it, s = min(min_size_test / min(H, W),
   max_size / max(H, W)). Bilinear, half-pixel centres (``align_corners=False``), no antialiasing.
3. **Run** the graph on the [3, h, w] tensor: ``boxes`` [K, 4] (xyxy, network pixels), ``scores`` [K],
   ``labels`` [K] (1..C, ``categories[].label``), ``masks`` [K, 1, M, M] probabilities, ``ga_maps`` [K, 1, M, M]
   (GAInS). The graph's own score floor is ``box_score_thresh``; keep detections with ``score >= score_thresh``.
4. **Boxes to the image**: x * W / w, y * H / h.
5. **Paste** each M x M map into its image box as torchvision's ``paste_masks_in_image`` does: pad the map with
   one pixel of zeros on every side, widen the box about its centre by (M + 2) / M, truncate its corners to
   integers (x0, y0, x1, y1), resize the padded map bilinearly (half-pixel centres) to (y1 - y0 + 1) x
   (x1 - x0 + 1) pixels and write it at (x0, y0), cropped at the image border; zero elsewhere. A mask is
   ``probability >= mask_thresh``; GA maps are pasted as ``ga - 1`` and 1 added back (1 = no anomaly outside
   the box).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import resize_boxes

from gains.data.dataset import image_to_tensor
from gains.intensity import Normalisation
from gains.jsonfile import read_json
from gains.models.transform import GainsTransform


def sidecar_path(out: str | Path) -> Path:
    """``FILE.json`` beside an export ``FILE`` (``nuclei.pt`` -> ``nuclei.pt.json``)."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def read_sidecar(out: str | Path) -> dict[str, Any]:
    """The sidecar of an export ``FILE`` (or the path of the JSON itself)."""
    path = Path(out)
    return read_json(path if path.suffix == ".json" else sidecar_path(path))


def normalisation(meta: dict[str, Any]) -> Normalisation:
    """The input normalisation a sidecar describes."""
    spec = meta["input"]["intensity"]
    value_range = spec.get("value_range")
    return Normalisation(spec["mode"], tuple(spec["percentiles"]), None if value_range is None else tuple(value_range))


def network_transform(meta: dict[str, Any]) -> GainsTransform:
    """The model's own test-time transform, rebuilt from the sidecar: its resize rule is step 2."""
    spec = meta["input"]
    size = int(spec["min_size_test"])
    return GainsTransform([size], size, int(spec["max_size"]), list(meta["image_mean"]), list(meta["image_std"]),
                          spec["test_scale"]).eval()


def network_size(height: int, width: int, meta: dict[str, Any]) -> tuple[int, int]:
    """(h, w) the graph wants an H x W image at (step 2 of the module docstring)."""
    return network_transform(meta).output_size(height, width)


def network_input(pixels: np.ndarray, meta: dict[str, Any]) -> torch.Tensor:
    """Float32 [3, h, w]: (H, W) or (H, W, C) raw pixels normalised and scaled for the graph (steps 1 and 2)."""
    image, _ = network_transform(meta).resize(image_to_tensor(pixels, normalisation(meta)))
    return image


def to_image(outputs: dict[str, torch.Tensor], meta: dict[str, Any], height: int, width: int,
             network: tuple[int, int], paste: bool = True) -> dict[str, torch.Tensor]:
    """The graph's outputs (by name) for an H x W image whose network input was ``network`` (h, w): detections
    with ``score >= score_thresh``, boxes in image pixels (step 4) and, with ``paste``, ``masks`` [K, H, W] bool
    and ``ga_maps`` [K, H, W] float32 in the image (step 5)."""
    keep = outputs["scores"] >= float(meta["score_thresh"])
    out = {k: v[keep] for k, v in outputs.items()}
    out["boxes"] = resize_boxes(out["boxes"], list(network), [height, width])
    if paste:
        probs = paste_masks_in_image(out["masks"], out["boxes"], (height, width))[:, 0]
        out["masks"] = probs >= float(meta["mask_thresh"])
        if "ga_maps" in out:
            out["ga_maps"] = paste_masks_in_image(out["ga_maps"] - 1.0, out["boxes"], (height, width))[:, 0] + 1.0
    return out
