"""What a Dask worker runs for ``gains predict --dask``: one tile of a large image, or one whole small image.

A worker loads each checkpoint once and keeps it (``_predictor``); a lock lets one task at a time use it,
because prediction sets the model's per-image limits while it runs. Tasks take and return plain data: the
tile's pixels (an array cut by the client, or a lazy plane the worker reads itself: ``gains.core.lazy``),
the image's normalisation ``Scaling`` and the instances as crops in image coordinates.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from gains.core.images import read_planes
from gains.core.masks import Instance
from gains.inference.loading import checkpoint_stamp
from gains.inference.predict_run import Job, predict_image
from gains.inference.predictor import PredictOptions, Predictor
from gains.intensity import Scaling

_MODELS: dict[tuple[Any, ...], Predictor] = {}
_LOCK = threading.Lock()


def _predictor(checkpoint: str | Path, options: PredictOptions, torch_threads: int | None) -> Predictor:
    """This worker's predictor of ``checkpoint`` (loaded on first use, reloaded when the file changes)."""
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)
    key = (str(checkpoint), checkpoint_stamp(checkpoint), options)
    if key not in _MODELS:
        _MODELS.clear()  # one model per worker
        _MODELS[key] = Predictor.from_checkpoint(checkpoint, options)
    return _MODELS[key]


def tile_task(checkpoint: str | Path, options: PredictOptions, torch_threads: int | None, pixels: Any,
              box: tuple[int, int, int, int], scaling: Scaling, whole: bool, level_scale: float | None
              ) -> list[Instance]:
    """Instances of one tile ``box`` (y0, x0, y1, x1) of an image, in image coordinates
    (``Predictor.predict_region``; ``level_scale``: the tile is of a pyramid level, see ``Predictor.on_level``).
    ``pixels``: the tile's own (H, W[, C]) array, or the image's lazy plane from which the worker reads it."""
    y0, x0, y1, x1 = box
    if not isinstance(pixels, np.ndarray):
        pixels = np.asarray(pixels[y0:y1, x0:x1])
    with _LOCK:
        return _predictor(checkpoint, options, torch_threads).predict_region(pixels, y0, x0, scaling, whole,
                                                                             level_scale)


def image_task(checkpoint: str | Path, options: PredictOptions, torch_threads: int | None, job: Job, k: int
               ) -> dict[str, Any]:
    """Predict image k of ``job`` whole on this worker (reading only its plane), write its files into the
    job's folder (which the worker must see) and return its record (``predict_image``)."""
    file, label = job.images[k]
    pixels = next(p.pixels for p in read_planes(file, job.plane_choice(k), lazy=None) if p.label == label)
    with _LOCK:
        return predict_image(job, k, pixels, _predictor(checkpoint, options, torch_threads))
