"""Pure loss functions of the GAInS RoI heads (logits, targets, labels -> scalar).

An empty set of positive RoIs returns ``logits.sum() * 0`` so the graph stays connected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align


def crop_to_rois(maps: torch.Tensor, rois: torch.Tensor, matched: torch.Tensor, size: int, aligned: bool = True
                 ) -> torch.Tensor:
    """Per-RoI crops of per-instance maps: ``roi_align`` of ``maps[matched[r]]`` in box ``rois[r]``.

    Args:
        maps: [N, H, W] float per-instance maps in image coordinates (masks or GA maps).
        rois: [R, 4] xyxy boxes in the same coordinates.
        matched: [R] int64 index of each RoI's instance.
        size: output side M. aligned: half-pixel-correct RoIAlign (detectron2's ROIAlignV2).

    Returns:
        [R, M, M] float crops (bilinear, adaptive sampling).
    """
    if rois.numel() == 0:
        return maps.new_zeros((0, size, size))
    boxes = torch.cat([matched[:, None].to(rois.dtype), rois], dim=1)
    return roi_align(maps[:, None].to(rois.dtype), boxes, (size, size), 1.0, sampling_ratio=0, aligned=aligned)[:, 0]


def _select(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return logits[torch.arange(labels.numel(), device=labels.device), labels]


def weighted_mask_loss(mask_logits: torch.Tensor, labels: torch.Tensor, mask_targets: torch.Tensor,
                       weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over RoIs and pixels of BCE(logit of the GT class, target) x weight (spec 2.5).

    Args:
        mask_logits: [R, C, M, M]; labels: [R] class index into C (0-based); mask_targets: [R, M, M] in [0, 1];
        weights: [R, M, M] GA crops, or None for plain BCE.
    """
    if labels.numel() == 0:
        return mask_logits.sum() * 0
    bce = F.binary_cross_entropy_with_logits(_select(mask_logits, labels), mask_targets, reduction="none")
    return (bce * weights).mean() if weights is not None else bce.mean()


def ga_regression_loss(ga_logits: torch.Tensor, labels: torch.Tensor, ga_targets: torch.Tensor) -> torch.Tensor:
    """MSE between the GT-class anomaly logits (raw, no sigmoid) and the GA crops: [R, C, M, M] vs [R, M, M]."""
    if labels.numel() == 0:
        return ga_logits.sum() * 0
    return F.mse_loss(_select(ga_logits, labels), ga_targets)
