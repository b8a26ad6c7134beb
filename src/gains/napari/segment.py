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

from gains.errors import InputError
from gains.inference.loading import load_model, resolve_scale
from gains.inference.predictor import Predictor
from gains.intensity import Normalisation
from gains.napari.layers import LayerData, result_layers

Progress = tuple[int, int, str]  # (done, total, what); total 0 = busy, no count yet


def _stamp(model: str) -> float:
    """Modification time of a model file or run folder's checkpoint (0 for names), so a rewritten file reloads."""
    path = Path(model)
    for candidate in (path / "best.pt", path / "last.pt", path):
        if candidate.is_file():
            return candidate.stat().st_mtime
    return 0.0


@lru_cache(maxsize=1)
def _cached_model(model: str, device: str, stamp: float) -> tuple[Any, Any, list[dict[str, Any]], Any]:
    from gains.core.parallel import resolve_device

    torch_device = resolve_device(device)
    return (*load_model(model, None, torch_device), torch_device)


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
    net, cfg, categories, torch_device = _cached_model(str(model), device, _stamp(str(model)))
    scale, note = resolve_scale(cfg.model, None, object_size)
    yield 0, 0, note
    try:
        predictor = Predictor(net, categories, torch_device, tile=tile, overlap=overlap, scale=scale,
                              score_thresh=score_thresh, normalisation=Normalisation.of_model(cfg.model))
    except ValueError as exc:
        raise InputError(f"tile {tile}, overlap {overlap}: {exc}") from exc
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
    return result_layers(None, instances, categories, name, h, w)
