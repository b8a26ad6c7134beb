"""Run a model over a dataset and score it: COCO results (RLE, overlaps kept), then AP.

DDP-aware: each rank predicts its share of the images and rank 0 gathers them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gains.core.parallel import all_gather_objects, rank, world_size
from gains.evaluation.coco import coco_ap


def to_coco_results(pred: dict[str, torch.Tensor], image_id: int, label_to_category: dict[int, int],
                    mask_thresh: float = 0.5) -> list[dict[str, Any]]:
    """COCO result entries of one image's predictions: each instance its own RLE (overlaps kept)."""
    from pycocotools import mask as mask_utils

    out = []
    masks = (pred["masks"][:, 0] >= mask_thresh).cpu().numpy().astype(np.uint8)
    boxes = pred["boxes"].cpu().numpy()
    for k in range(masks.shape[0]):
        rle = mask_utils.encode(np.asfortranarray(masks[k]))
        x0, y0, x1, y1 = (float(v) for v in boxes[k])
        out.append({"image_id": int(image_id), "category_id": int(label_to_category[int(pred["labels"][k])]),
                    "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()},
                    "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(pred["scores"][k])})
    return out


@torch.no_grad()
def predict_dataset(model: torch.nn.Module, dataset, device: torch.device, batch_size: int = 1
                    ) -> list[dict[str, Any]]:
    """COCO results of ``model`` on every image of ``dataset`` (gathered from all ranks)."""
    was_training = model.training
    model.eval()
    mine = list(range(rank(), len(dataset), world_size()))
    results: list[dict[str, Any]] = []
    for start in range(0, len(mine), batch_size):
        items = [dataset[i] for i in mine[start : start + batch_size]]
        preds = model([img.to(device) for img, _ in items])
        for (_, target), pred in zip(items, preds, strict=True):
            results += to_coco_results(pred, int(target["image_id"]), dataset.label_to_category)
    model.train(was_training)
    gathered = all_gather_objects(results)
    return [r for part in gathered for r in part]


def evaluate(model: torch.nn.Module, dataset, gt_json: str | Path, device: torch.device, max_dets: int = 100
             ) -> dict[str, float]:
    """segm/AP, segm/AP50, segm/AP75 and bbox/AP of ``model`` on ``dataset`` (every rank gets the numbers)."""
    results = predict_dataset(model, dataset, device)
    segm = coco_ap(gt_json, results, "segm", max_dets)
    bbox = coco_ap(gt_json, results, "bbox", max_dets)
    return {"segm/AP": segm["AP"], "segm/AP50": segm["AP50"], "segm/AP75": segm["AP75"], "bbox/AP": bbox["AP"]}
