"""``gains eval``: run a trained model over a dataset split and score it with every metric."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from gains.atomic import atomic_write
from gains.core import parallel as dist
from gains.core.planes import DEFAULT_MAX_BYTES
from gains.data.dataset import InstanceDataset
from gains.errors import InputError
from gains.evaluation.score import score, write_metrics
from gains.formats.coco import coco_results
from gains.inference.predict_run import done_image, share, tile_progress
from gains.inference.predictor import PredictOptions, Predictor
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
                        options: PredictOptions | None = None, score_thresh: float | None = None,
                        max_dets: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Predict ``split`` of ``data`` with ``checkpoint``; write results.json, METRICS.json and the CSV.

    The images are predicted as ``gains predict`` predicts them (``Predictor.from_checkpoint`` with ``options``:
    tiles, scale, device; default ``PredictOptions()``) keeping every detection the model returns
    (``--score-thresh 0``, as COCO AP needs), and the results are encoded as its ``results.json``; they are then
    scored as ``gains score`` scores them with ``score_thresh`` and ``max_dets`` (default: the checkpoint's
    ``eval`` settings). So ``gains eval`` = ``gains predict --score-thresh 0`` + ``gains score``. ``progress``: the
    main process shows a bar of images and tiles on stderr, as ``gains predict`` does.

    Returns the metrics (every rank gets them; rank 0 writes the files); the one-line note on the scale used is
    in them as ``scale_note``, the duplicate suppression used as ``suppression`` ({nms, drop_contained}). Under
    torchrun each rank predicts its ``share`` of the images. ``out`` follows ``gains.outputs``: apart from the
    data, new, empty or an earlier evaluation's folder (whose files are replaced), locked while written.
    """
    options = replace(options or PredictOptions(), score_thresh=0.0)
    dist.init_distributed(dist.resolve_device(options.device))
    predictor = Predictor.from_checkpoint(checkpoint, options)
    cfg = predictor.config
    score_thresh = score_thresh if score_thresh is not None else cfg.eval.score_thresh
    predictor.confident = score_thresh  # a cut-off matters only for detections the per-image metrics count
    gt = split_file(data, split)
    dataset = InstanceDataset(gt)
    if not len(dataset):
        raise InputError(f"{gt}: no images, nothing to evaluate")
    unknown = {c["id"] for c in predictor.categories} - set(dataset.category_to_label)
    if unknown:
        raise InputError(f"{gt}: categories {sorted(unknown)} of the model are not in this dataset")
    check_scaled_sizes(dataset, predictor.scale or 1.0)
    out = Path(out)
    check_apart(out, [data, gt, dataset.images_dir])
    metrics: dict[str, Any] = {}
    # claimed before the long prediction (a folder not ours is refused first); a failure removes what it made
    with claim(out, "evaluation") if dist.is_main() else contextlib.nullcontext():
        results = predict_images(predictor, dataset, progress and dist.is_main())
        if dist.is_main():
            atomic_write(out / "results.json", lambda fh: fh.write(json.dumps(results).encode()))
            metrics, rows = score(gt, out / "results.json", score_thresh,
                                  max_dets if max_dets is not None else cfg.eval.max_dets)
            metrics["scale_note"] = predictor.scale_note
            metrics["suppression"] = {"nms": options.nms, "drop_contained": options.contained}
            write_metrics(out / "METRICS.json", metrics, rows)
    return dist.broadcast_object(metrics)


def predict_images(predictor: Predictor, dataset: InstanceDataset, progress: bool = False) -> list[dict[str, Any]]:
    """COCO results of every image of ``dataset``, in image order, each image's by descending score (gathered
    from every rank; this rank predicts its ``share``). ``progress``: a tqdm bar of this rank's images on stderr,
    with the current image's tiles (``tile k/n``) after it.

    Raises:
        InputError: an unreadable image or pixels the predictor refuses, naming the file and the image.
    """
    from tqdm import tqdm

    mine: dict[int, list[dict[str, Any]]] = {}
    indices = share(len(dataset), dist.rank(), dist.world_size())
    with tqdm(total=len(indices), unit="img", desc="eval", disable=not progress) as bar:
        for k in indices:
            image = dataset.images[k]
            pixels = dataset.pixels(k)
            try:
                instances = predictor.predict(pixels, tile_progress(bar))
            except ValueError as exc:
                raise InputError(f"{dataset.coco.path}: image {image.id}: {exc}") from exc
            mine[k] = coco_results(instances, image.id, *pixels.shape[:2])
            done_image(bar)
    gathered = {k: entries for part in dist.all_gather_objects(mine) for k, entries in part.items()}
    return [entry for k in sorted(gathered) for entry in gathered[k]]
