"""The widget's work without Qt: load a model (kept while unchanged), predict one image with progress,
build the result layers. A generator, so a ``thread_worker`` can run it and pass its progress to the viewer."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gains.config import Config
from gains.errors import InputError
from gains.inference.loading import checkpoint_stamp, load_model
from gains.inference.predictor import PredictOptions, Predictor
from gains.napari.layers import LayerData, result_layers

Progress = tuple[int, int, str]  # (done, total, what); total 0 = busy, no count yet


@lru_cache(maxsize=1)
def _cached_model(model: str, overrides: tuple[str, ...], device: torch.device, stamp: int
                  ) -> tuple[torch.nn.Module, Config, list[dict[str, Any]]]:
    return load_model(model, list(overrides), device)


def _load(model: str | Path, overrides: list[str], device: torch.device
          ) -> tuple[torch.nn.Module, Config, list[dict[str, Any]]]:
    """``load_model``, keeping the last model while its file is unchanged (a new threshold or tile reuses it)."""
    return _cached_model(str(model), tuple(overrides), device, checkpoint_stamp(model))


def segment(model: str, pixels: np.ndarray, name: str, score_thresh: float = 0.5, tile: int | None = 1024,
            overlap: int = 128, device: str = "auto", object_size: float | None = None
            ) -> Generator[Progress, None, list[LayerData]]:
    """Yield progress while segmenting ``pixels`` ((H, W) or (H, W, C)); return its instance and GA layers.

    Args:
        model: what ``gains.inference.loading.load_model`` takes (a run folder, a ``.pt`` file).
        name: layer name stem (the image layer's name).
        tile: tile side in network pixels (as ``gains predict --tile``), None for the whole image at once.
        object_size: the objects' typical diameter in pixels (``--object-size``); None: the model's scale rule.

    Raises:
        InputError: an unusable model, settings the predictor refuses (overlap >= tile) or pixels it
            refuses (non-finite values).
    """
    yield 0, 0, "loading model"
    options = PredictOptions(tile=tile, overlap=overlap, object_size=object_size, score_thresh=score_thresh,
                             device=device)
    predictor = Predictor.from_checkpoint(model, options, load=_load)
    yield 0, 0, predictor.scale_note
    steps: queue.Queue[tuple[int, int]] = queue.Queue()
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["instances"] = predictor.predict(pixels, progress=lambda d, t: steps.put((d, t)))
        except BaseException as exc:  # handed to the generator, which raises it in the worker
            result["error"] = exc
        finally:
            steps.put((-1, -1))

    # predict() reports tiles through a callback, which cannot yield: it runs on a helper thread and the
    # generator relays its steps, so the worker running this generator sees each tile.
    thread = threading.Thread(target=work, name="gains-predict", daemon=True)
    thread.start()
    yield 0, len(predictor.tiles(*pixels.shape[:2])), "predicting"
    while (step := steps.get())[0] >= 0:
        yield step[0], step[1], "predicting"
    thread.join()
    if isinstance(result.get("error"), ValueError) and not isinstance(result["error"], InputError):
        raise InputError(f"layer {name!r}: {result['error']}") from result["error"]  # e.g. non-finite pixels
    if "error" in result:
        raise result["error"]
    instances = result["instances"]
    h, w = pixels.shape[:2]
    yield 0, 0, f"{len(instances)} instances: building layers"
    return result_layers(pixels, instances, predictor.categories, name, h, w, with_image=False)
