"""``build_model``: torchvision Mask R-CNN with ``GainsRoIHeads`` and ``GainsTransform``, composed explicitly."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

from gains.config import ModelConfig
from gains.models.heads import GuidanceFusion, MaskBranch
from gains.models.roi_heads import GainsRoIHeads
from gains.models.roi_pool import GatherRoIAlign
from gains.models.transform import GainsTransform

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
VARIANTS = ("gains", "maskrcnn")
ROI_POOLS = {"gather": GatherRoIAlign, "torchvision": MultiScaleRoIAlign}  # model.roi_pool


def _norm_layer(norm: str):
    layers = {"frozen_bn": FrozenBatchNorm2d, "bn": nn.BatchNorm2d, "gn": partial(nn.GroupNorm, 32)}
    if norm not in layers:
        raise ValueError(f"model.norm must be one of {sorted(layers)}, got {norm!r}")
    return layers[norm]


def _float32_outputs(module: nn.Module, inputs: Any, output: Any) -> Any:
    """Forward hook: the floating tensors of a (nested tuple/list) output as float32.

    Under bf16/fp16 autocast the RPN head's box deltas, and hence the proposals decoded from them, would
    be bf16: 8 significant bits put box corners on a 2 px grid between 256 and 512 px, small proposals collapse to
    zero width and the box-regression targets become NaN (seen on DSB2018 nuclei). Box coding, NMS and the
    box losses therefore run in float32; only the convolutions run in low precision.
    """
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, (tuple, list)):
        return type(output)(_float32_outputs(module, inputs, o) for o in output)
    return output


def build_model(cfg: ModelConfig, num_classes: int) -> MaskRCNN:
    """A MaskRCNN for ``num_classes`` object classes (background excluded) as ``cfg`` describes.

    ``cfg.variant`` ``gains`` adds the guidance fusion and the anomaly branch; ``maskrcnn`` is the same
    model without them. Weights are loaded separately (``gains.models.weights.load_weights``).
    """
    if cfg.variant not in VARIANTS:
        raise ValueError(f"model.variant must be one of {VARIANTS}, got {cfg.variant!r}")
    if cfg.backbone not in BACKBONES:
        raise ValueError(f"model.backbone must be one of {BACKBONES}, got {cfg.backbone!r}")
    if num_classes < 1:
        raise ValueError("num_classes must be >= 1")
    if cfg.anomaly_channels < 1:
        raise ValueError(f"model.anomaly_channels must be >= 1, got {cfg.anomaly_channels}")
    if cfg.fusion_kernel < 1 or cfg.fusion_kernel % 2 == 0:
        raise ValueError(f"model.fusion_kernel must be an odd size >= 1, got {cfg.fusion_kernel}")
    if cfg.roi_pool not in ROI_POOLS:
        raise ValueError(f"model.roi_pool must be one of {tuple(ROI_POOLS)}, got {cfg.roi_pool!r}")
    pool = ROI_POOLS[cfg.roi_pool]
    backbone = resnet_fpn_backbone(backbone_name=cfg.backbone, weights=None, norm_layer=_norm_layer(cfg.norm),
                                   trainable_layers=cfg.trainable_layers)
    anchors = AnchorGenerator(tuple((s,) for s in cfg.anchor_sizes),
                              (tuple(cfg.aspect_ratios),) * len(cfg.anchor_sizes))
    mask_pool = pool(["0", "1", "2", "3"], cfg.mask_pool_size, sampling_ratio=0)
    model = MaskRCNN(
        backbone, num_classes=num_classes + 1, min_size=cfg.min_size_train, max_size=cfg.max_size,
        image_mean=cfg.image_mean, image_std=cfg.image_std, rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train, rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train, rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
        rpn_nms_thresh=cfg.rpn_nms_thresh, rpn_batch_size_per_image=cfg.rpn_batch_size_per_image,
        box_roi_pool=pool(["0", "1", "2", "3"], 7, sampling_ratio=0),
        box_score_thresh=cfg.box_score_thresh, box_nms_thresh=cfg.box_nms_thresh,
        box_detections_per_img=cfg.detections_per_img, box_batch_size_per_image=cfg.box_batch_size_per_image,
        box_positive_fraction=cfg.box_positive_fraction, mask_roi_pool=mask_pool,
    )  # torchvision's default mask head is built here and replaced just below
    old = model.roi_heads
    gains = cfg.variant == "gains"
    mask_weight = cfg.mask_loss_weight if cfg.mask_loss_weight is not None else (0.75 if gains else 1.0)
    model.roi_heads = GainsRoIHeads(
        old.box_roi_pool, old.box_head, old.box_predictor,
        0.5, 0.5, cfg.box_batch_size_per_image, cfg.box_positive_fraction, (10.0, 10.0, 5.0, 5.0),
        cfg.box_score_thresh, cfg.box_nms_thresh, cfg.detections_per_img,
        mask_roi_pool=mask_pool, mask_branch=MaskBranch(256, num_classes + 1),
        fusion=GuidanceFusion(256, cfg.anomaly_channels, cfg.fusion_kernel) if gains else None,
        anomaly=MaskBranch(cfg.anomaly_channels, num_classes + 1, conv_dim=cfg.anomaly_channels) if gains else None,
        mask_loss_weight=mask_weight, ga_loss_weight=cfg.ga_loss_weight, predict_ga_maps=cfg.predict_ga_maps,
        aligned=cfg.roi_aligned, ga_rois_per_image=cfg.ga_rois_per_image,
    )
    model.rpn.head.register_forward_hook(_float32_outputs)
    model.roi_heads.box_predictor.register_forward_hook(_float32_outputs)
    model.transform = GainsTransform(cfg.min_size_train, cfg.min_size_test, cfg.max_size, cfg.image_mean,
                                     cfg.image_std, cfg.test_scale)
    return model
