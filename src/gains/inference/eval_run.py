"""``gains eval``: run a trained model over a dataset split and score it with every metric."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gains.atomic import atomic_write
from gains.data.dataset import InstanceDataset
from gains.engine import distributed as dist
from gains.errors import InputError
from gains.evaluation.evaluator import predict_dataset
from gains.evaluation.score import score, write_metrics
from gains.inference.loading import load_model, resolve_scale
from gains.intensity import Normalisation


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
    the scale used is in the metrics as ``scale_note``.
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
    results = predict_dataset(model, dataset, torch_device, batch_size)
    out = Path(out)
    metrics: dict[str, Any] = {}
    if dist.is_main():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "results.json", lambda fh: fh.write(json.dumps(results).encode()))
        metrics, rows = score(gt, out / "results.json", score_thresh if score_thresh is not None else
                              cfg.eval.score_thresh, max_dets if max_dets is not None else cfg.eval.max_dets)
        metrics["scale_note"] = scale_note
        write_metrics(out / "METRICS.json", metrics, rows)
    return dist.broadcast_object(metrics)
