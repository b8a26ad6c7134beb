"""``gains eval``: run a trained model over a dataset split and score it with every metric."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from gains.atomic import atomic_write
from gains.core import parallel as dist
from gains.core.images import DEFAULT_MAX_BYTES
from gains.data.dataset import InstanceDataset
from gains.errors import InputError
from gains.evaluation.evaluator import predict_dataset
from gains.evaluation.score import score, write_metrics
from gains.inference.loading import load_model, resolve_scale
from gains.intensity import Normalisation
from gains.outputs import check_apart, claim

NETWORK_BYTES_PER_PIXEL = 3 * 4  # the model's input: three float32 channels


def check_scaled_sizes(dataset: InstanceDataset, scale: float, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Refuse a dataset image whose network input at ``scale`` would be over ``max_bytes`` (before any is read).

    Raises:
        InputError: naming the annotations file, the image and ``--scale`` / ``--object-size``.
    """
    for image in dataset.images:
        if image.height is None or image.width is None:
            continue
        size = image.height * image.width * NETWORK_BYTES_PER_PIXEL * max(scale, 1.0) ** 2
        if size > max_bytes:
            raise InputError(f"{dataset.coco.path}: image {image.id} ({image.height} x {image.width}) at scale "
                             f"{scale:.4g} needs {size / (1 << 30):.1f} GiB of network input, over the "
                             f"{max_bytes / (1 << 30):.3g} GiB limit; pass a smaller --scale or a larger --object-size")


def split_file(data: str | Path, split: str) -> Path:
    """``DIR/<split>.json`` (``all`` = ``annotations.json``), or ``data`` itself when it is a JSON file."""
    data = Path(data)
    if data.is_file():
        return data
    path = data / ("annotations.json" if split == "all" else f"{split}.json")
    if not path.is_file():
        raise InputError(f"{path}: no such split (make it with `gains split {data}`)")
    return path


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, split: str, out: str | Path,
                        device: str = "cpu", batch_size: int = 1, overrides: list[str] | None = None,
                        score_thresh: float | None = None, max_dets: int | None = None, scale: float | None = None,
                        object_size: float | None = None) -> dict[str, Any]:
    """Predict ``split`` of ``data`` with ``checkpoint``; write results.json, METRICS.json and the CSV.

    Returns the metrics (every rank gets them; rank 0 writes the files). ``scale`` / ``object_size``: see
    ``gains.inference.loading.resolve_scale`` (default: the model's own scale rule); the one-line note on
    the scale used is in the metrics as ``scale_note``. ``out`` follows ``gains.outputs``: apart from the data,
    new, empty or an earlier evaluation's folder (whose files are replaced), locked while written.
    """
    torch_device = dist.resolve_device(device)
    dist.init_distributed(torch_device)
    model, cfg, categories = load_model(checkpoint, overrides, torch_device)
    model.transform.test_scale, scale_note = resolve_scale(cfg.model, scale, object_size)
    gt = split_file(data, split)
    dataset = InstanceDataset(gt, normalisation=Normalisation.of_model(cfg.model))
    if not len(dataset):
        raise InputError(f"{gt}: no images, nothing to evaluate")
    unknown = {c["id"] for c in categories} - set(dataset.category_to_label)
    if unknown:
        raise InputError(f"{gt}: categories {sorted(unknown)} of the model are not in this dataset")
    dataset.label_to_category = {c["label"]: c["id"] for c in categories}
    check_scaled_sizes(dataset, model.transform.test_scale or 1.0)
    out = Path(out)
    check_apart(out, [data, gt, dataset.images_dir])
    metrics: dict[str, Any] = {}
    # claimed before the long prediction (a folder not ours is refused first); a failure removes what it made
    with claim(out, "evaluation") if dist.is_main() else contextlib.nullcontext():
        results = predict_dataset(model, dataset, torch_device, batch_size)
        if dist.is_main():
            atomic_write(out / "results.json", lambda fh: fh.write(json.dumps(results).encode()))
            metrics, rows = score(gt, out / "results.json", score_thresh if score_thresh is not None else
                                  cfg.eval.score_thresh, max_dets if max_dets is not None else cfg.eval.max_dets)
            metrics["scale_note"] = scale_note
            write_metrics(out / "METRICS.json", metrics, rows)
    return dist.broadcast_object(metrics)
