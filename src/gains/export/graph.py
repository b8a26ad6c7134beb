"""The exportable inference graph of a gains model: one image at the network's scale in, detections out.

What runs inside the graph (the same modules and weights as ``model(images)`` in eval mode):
mean/std normalisation, zero padding to multiples of 32, backbone + FPN, RPN (anchors, proposal NMS),
box head (decoding, per-class score threshold, NMS, top detections), the mask branch and, for GAInS, the
guidance fusion and the anomaly branch, read at each detection's predicted class.

What stays outside (``gains.export.host`` does it in Python; the sidecar JSON holds the numbers):
intensity normalisation of raw pixels to [0, 1], resizing to the model's test scale, mapping boxes back
to the image, pasting the M x M maps into the image, the user's score threshold, tiling of large images.

The model's parts are composed anew, not edited: the box post-processing is torchvision's own
``RoIHeads.postprocess_detections`` on a plain ``RoIHeads`` that shares the box modules (``GainsRoIHeads.forward``
also holds the training path, which TorchScript does not need), and the float32 forward hooks that
``build_model`` puts on the RPN head and the box predictor are left off a copy of the model: they only
cast bf16/fp16 autocast outputs back to float32, so in a float32 graph they change nothing, and TorchScript
cannot compile them.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from gains.models.roi_pool import torchvision_pool

INPUT_NAMES = ["image"]
OUTPUT_NAMES = ["boxes", "scores", "labels", "masks"]
GA_OUTPUT_NAMES = [*OUTPUT_NAMES, "ga_maps"]


def _without_hooks(model: nn.Module) -> nn.Module:
    """A float32 CPU eval-mode copy of ``model`` with no forward hooks (see the module docstring)."""
    model = copy.deepcopy(model).cpu().float().eval()
    for module in model.modules():
        module._forward_hooks.clear()
    return model


class MaskRCNNGraph(nn.Module):
    """Inference of a gains Mask R-CNN on one image; scriptable and traceable.

    ``forward(image)``: ``image`` float32 [3, H, W], intensities in [0, 1] (``gains.intensity``), already at the
    network's scale. Returns ``boxes`` [K, 4] float32 xyxy in the input's pixels, ``scores`` [K] float32,
    ``labels`` [K] int64 (1..C), ``masks`` [K, 1, M, M] float32 probabilities over each box (M = 2 x the mask
    pool size), K <= detections_per_img, by descending score.

    Built by ``inference_graph``, which hands it a hook-free copy of the model (the graph shares its modules).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        tr, heads = model.transform, model.roi_heads
        self.transform = GeneralizedRCNNTransform(1, 1, list(tr.image_mean), list(tr.image_std))  # normalise, pad
        self.backbone = model.backbone
        self.rpn = model.rpn
        self.box_heads = RoIHeads(
            torchvision_pool(heads.box_roi_pool), heads.box_head, heads.box_predictor,
            heads.proposal_matcher.high_threshold, heads.proposal_matcher.low_threshold,
            heads.fg_bg_sampler.batch_size_per_image, heads.fg_bg_sampler.positive_fraction,
            heads.box_coder.weights, heads.score_thresh, heads.nms_thresh, heads.detections_per_img)
        self.mask_roi_pool = torchvision_pool(heads.mask_roi_pool)
        self.mask_branch = heads.mask_branch

    def detect(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(boxes, scores, labels, mask probabilities, pooled mask features, mask branch inner features)."""
        images = [self.transform.normalize(image)]
        shapes = [img.shape[-2:] for img in images]  # traced as tensors: the sizes stay dynamic in ONNX
        sizes: list[tuple[int, int]] = []
        for s in shapes:
            sizes.append((s[0], s[1]))
        batched = self.transform.batch_images(images, size_divisible=32)  # a literal: TorchScript wants one
        features = self.backbone(batched)
        proposals, _ = self.rpn(ImageList(batched, sizes), features)
        heads = self.box_heads
        class_logits, box_regression = heads.box_predictor(heads.box_head(heads.box_roi_pool(features, proposals,
                                                                                             sizes)))
        boxes, scores, labels = heads.postprocess_detections(class_logits, box_regression, proposals, sizes)
        pooled = self.mask_roi_pool(features, boxes, sizes)
        logits, inner = self.mask_branch(pooled)
        index = torch.arange(labels[0].shape[0], device=labels[0].device)
        masks = logits[index, labels[0]][:, None].sigmoid()
        return boxes[0], scores[0], labels[0], masks, pooled, inner

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        boxes, scores, labels, masks, _, _ = self.detect(image)
        return boxes, scores, labels, masks


class GainsGraph(MaskRCNNGraph):
    """``MaskRCNNGraph`` plus ``ga_maps`` [K, 1, M, M] float32: the anomaly branch's regressed GA values over each
    box (about 1 = no anomaly .. 1 + ga_factor; no sigmoid), as ``GainsRoIHeads`` returns them."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.fusion = model.roi_heads.fusion
        self.anomaly = model.roi_heads.anomaly

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        boxes, scores, labels, masks, pooled, inner = self.detect(image)
        index = torch.arange(labels.shape[0], device=labels.device)
        ga_maps = self.anomaly(self.fusion(pooled, inner))[0][index, labels][:, None]
        return boxes, scores, labels, masks, ga_maps


def inference_graph(model: nn.Module) -> MaskRCNNGraph:
    """The exportable graph of a gains model (``gains.models.build.build_model``): ``GainsGraph`` when the model
    has the anomaly branch and predicts GA maps, else ``MaskRCNNGraph``. The graph holds copies of the weights;
    ``model`` is not changed."""
    heads = model.roi_heads
    gains = getattr(heads, "anomaly", None) is not None and getattr(heads, "predict_ga_maps", False)
    return (GainsGraph if gains else MaskRCNNGraph)(_without_hooks(model)).eval()


def output_names(graph: MaskRCNNGraph) -> list[str]:
    """Names of the graph's outputs, in order."""
    return list(GA_OUTPUT_NAMES if isinstance(graph, GainsGraph) else OUTPUT_NAMES)
