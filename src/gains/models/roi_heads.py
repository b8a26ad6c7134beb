"""``GainsRoIHeads``: torchvision's RoIHeads with the GAInS mask and anomaly branches.

Proposals are sampled once (``select_training_samples``); the positives and their matched ground
truth indices feed ``_forward_mask`` and ``_forward_ga``. The mask loss uses every positive RoI; the
anomaly branch trains on at most ``ga_rois_per_image`` of them per image (None = all, the reference),
which keeps its cost small (see docs/BENCHMARKS.md). Without ``fusion``/``anomaly`` it is a plain
Mask R-CNN head with the same mask targets (RoIAlign aligned=True), so the two variants differ only
by the GA parts. Targets: ``boxes``, ``labels`` (1..C), ``masks`` uint8 [N, H, W] and, for GAInS,
``ga_maps`` float32 [N, H, W] in the (resized) image frame.

Outputs at inference, per image: ``boxes``, ``labels``, ``scores``, ``masks`` [K, 1, M, M]
probabilities (pasted by the transform) and, with ``predict_ga_maps``, ``ga_maps`` [K, 1, M, M]: the
anomaly branch's regressed GA values (about 1 .. 1 + ga_factor; not squashed by a sigmoid).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss

from gains.models.heads import GuidanceFusion, MaskBranch
from gains.models.losses import crop_to_rois, ga_regression_loss, weighted_mask_loss


class GainsRoIHeads(RoIHeads):
    """Box head + mask branch (+ guidance fusion and anomaly branch for GAInS)."""

    def __init__(self, *args, mask_roi_pool: nn.Module, mask_branch: MaskBranch,
                 fusion: GuidanceFusion | None = None, anomaly: MaskBranch | None = None,
                 mask_loss_weight: float = 0.75, ga_loss_weight: float = 1.0, predict_ga_maps: bool = True,
                 aligned: bool = True, ga_rois_per_image: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mask_roi_pool = mask_roi_pool
        self.mask_branch = mask_branch
        self.fusion = fusion
        self.anomaly = anomaly
        self.mask_loss_weight = mask_loss_weight
        self.ga_loss_weight = ga_loss_weight
        self.predict_ga_maps = predict_ga_maps
        self.aligned = aligned
        self.ga_rois_per_image = ga_rois_per_image

    @property
    def is_gains(self) -> bool:
        return self.anomaly is not None

    def has_mask(self) -> bool:
        return True

    def _forward_box(self, features, proposals, image_shapes):
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        return self.box_predictor(box_features)

    def _forward_mask(self, features, boxes, image_shapes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mask logits [R, C+1, M, M], inner [R, 256, S, S], pooled [R, 256, S, S])."""
        pooled = self.mask_roi_pool(features, boxes, image_shapes)
        logits, inner = self.mask_branch(pooled)
        return logits, inner, pooled

    def _forward_ga(self, pooled: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
        """Anomaly logits [R, C+1, M, M] from the fused (pooled, inner) feature."""
        return self.anomaly(self.fusion(pooled, inner))[0]

    def _ga_subset(self, counts: list[int], device: torch.device) -> torch.Tensor:
        """Indices of the positive RoIs the anomaly branch trains on: at most ``ga_rois_per_image`` per
        image, drawn at random (torch's generator); all of them when the cap is None."""
        picks, offset = [], 0
        for n in counts:
            idx = torch.arange(offset, offset + n, device=device)
            if self.ga_rois_per_image is not None and n > self.ga_rois_per_image:
                idx = idx[torch.randperm(n, device=device)[: self.ga_rois_per_image].sort().values]
            picks.append(idx)
            offset += n
        return torch.cat(picks) if picks else torch.zeros(0, dtype=torch.int64, device=device)

    def forward(self, features, proposals, image_shapes, targets=None):
        if self.training:
            if targets is None:
                raise ValueError("targets are required in training")
            if self.is_gains and any("ga_maps" not in t for t in targets):
                raise ValueError("GAInS training targets need ga_maps (a dataset built with GAMM parameters)")
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
            class_logits, box_regression = self._forward_box(features, proposals, image_shapes)
            loss_cls, loss_box = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
            losses = {"loss_classifier": loss_cls, "loss_box_reg": loss_box}
            pos_boxes, pos_matched, pos_labels = [], [], []
            for p, m, lab in zip(proposals, matched_idxs, labels, strict=True):
                pos = torch.where(lab > 0)[0]
                pos_boxes.append(p[pos])
                pos_matched.append(m[pos])
                pos_labels.append(lab[pos])
            mask_logits, inner, pooled = self._forward_mask(features, pos_boxes, image_shapes)
            size = mask_logits.shape[-1]
            mask_t, ga_t = [], []
            for t, b, m in zip(targets, pos_boxes, pos_matched, strict=True):
                mask_t.append(crop_to_rois(t["masks"].float(), b, m, size, self.aligned))
                if self.is_gains:
                    ga_t.append(crop_to_rois(t["ga_maps"], b, m, size, self.aligned))
            lab = torch.cat(pos_labels)
            ga = torch.cat(ga_t) if self.is_gains else None
            losses["loss_mask"] = self.mask_loss_weight * weighted_mask_loss(mask_logits, lab, torch.cat(mask_t), ga)
            if self.is_gains:
                sel = self._ga_subset([len(b) for b in pos_boxes], lab.device)
                ga_logits = self._forward_ga(pooled[sel], inner[sel])
                losses["loss_ga"] = self.ga_loss_weight * ga_regression_loss(ga_logits, lab[sel], ga[sel])
            return [], losses

        class_logits, box_regression = self._forward_box(features, proposals, image_shapes)
        boxes, scores, labels = self.postprocess_detections(class_logits, box_regression, proposals, image_shapes)
        result = [{"boxes": b, "labels": lab, "scores": s} for b, s, lab in zip(boxes, scores, labels, strict=True)]
        mask_logits, inner, pooled = self._forward_mask(features, boxes, image_shapes)
        counts = [len(b) for b in boxes]
        lab = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64)
        index = torch.arange(lab.numel(), device=lab.device)
        probs = mask_logits[index, lab][:, None].sigmoid().split(counts)
        for r, p in zip(result, probs, strict=True):
            r["masks"] = p
        if self.is_gains and self.predict_ga_maps:
            ga = self._forward_ga(pooled, inner)[index, lab][:, None].split(counts)
            for r, g in zip(result, ga, strict=True):
                r["ga_maps"] = g
        return result, {}
