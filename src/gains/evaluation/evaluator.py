"""The fast validation during training: the model in hand over a dataset's images, whole, then COCO AP.

``gains eval`` predicts through ``gains.inference.Predictor`` instead (tiling included, what ``gains predict``
writes); both encode results with ``gains.core.coco.result_entry``. DDP-aware: each rank predicts its share
of the images and every rank gets the gathered results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gains.core.coco import result_entry
from gains.core.masks import tight_crop
from gains.core.parallel import all_gather_objects, rank, world_size
from gains.evaluation.coco import coco_ap


def to_coco_results(pred: dict[str, torch.Tensor], image_id: int, label_to_category: dict[int, int],
                    mask_thresh: float = 0.5) -> list[dict[str, Any]]:
    """COCO result entries of one image's model output (``masks`` [N, 1, H, W] probabilities at image size):
    each instance its own RLE (overlaps kept), empty masks dropped, as ``gains predict`` writes them."""
    masks = (pred["masks"][:, 0] >= mask_thresh).cpu().numpy()
    height, width = masks.shape[1:]
    out = []
    for k in range(masks.shape[0]):
        crop = tight_crop(masks[k])
        if crop is not None:
            category = label_to_category[int(pred["labels"][k])]
            out.append(result_entry(crop, int(image_id), int(category), float(pred["scores"][k]), height, width))
    return out


@torch.no_grad()
def predict_dataset(model: torch.nn.Module, dataset, device: torch.device) -> list[dict[str, Any]]:
    """COCO results of ``model`` on every image of ``dataset`` (an ``InstanceDataset``), gathered from all ranks."""
    was_training = model.training
    model.eval()
    results: list[dict[str, Any]] = []
    for i in range(rank(), len(dataset), world_size()):
        image, target = dataset[i]
        pred = model([image.to(device)])[0]
        results += to_coco_results(pred, int(target["image_id"]), dataset.label_to_category)
    model.train(was_training)
    return [r for part in all_gather_objects(results) for r in part]


def evaluate(model: torch.nn.Module, dataset, gt_json: str | Path, device: torch.device, max_dets: int = 100
             ) -> dict[str, float]:
    """segm/AP, segm/AP50, segm/AP75 and bbox/AP of ``model`` on ``dataset`` (every rank gets the numbers)."""
    results = predict_dataset(model, dataset, device)
    segm = coco_ap(gt_json, results, "segm", max_dets)
    bbox = coco_ap(gt_json, results, "bbox", max_dets)
    return {"segm/AP": segm["AP"], "segm/AP50": segm["AP50"], "segm/AP75": segm["AP75"], "bbox/AP": bbox["AP"]}
