"""The correct-and-retrain loop without Qt: corrected layers into a training set, and fine-tuning with progress.

1. ``add_to_training_set``: an image (H, W) or (H, W, C) and the Labels layers that hold its instances (one
   instance per label value per layer, so overlapping instances live in different layers, as the segment
   widget makes them) become one image of a canonical dataset folder (``annotations.json`` + ``images/``), the
   folder the ``gains train DIR`` command reads. The folder is made on the first image and rewritten whole,
   through ``gains.data.canonical.write_dataset`` (staged, then swapped), on each later one; an image added
   again under the same name replaces its earlier version (a second round of corrections).
2. ``finetune``: ``gains.engine.recipe.train_folder`` on that folder from a starting model, with a time
   budget, on a helper thread; a generator relays its progress (elapsed seconds, the budget, the last logged
   iteration and loss from the run's ``metrics.jsonl``) so a napari worker can show it, and returns the run
   folder: a model the segment widget takes as it takes any run folder.
No napari or Qt import here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gains.core.coco import load_coco
from gains.core.masks import MaskCrop, segmentation_to_crop
from gains.data.canonical import Sample, write_dataset
from gains.data.folders import label_crops
from gains.errors import InputError

Progress = tuple[float, float, str]  # (seconds done, seconds budgeted, what); budget 0 = busy, no count
DEFAULT_CATEGORY = {"id": 1, "name": "object"}


def instances_of_layers(layers: Sequence[np.ndarray], shape: tuple[int, int], names: Sequence[str] = ()
                        ) -> list[MaskCrop]:
    """Every label value of every layer as one instance mask (layers of shape (H, W), or (1, ..., 1, H, W) as
    results placed on a plane of a stack); in layer order, then by value.

    Raises:
        InputError: a layer of another size than the image, or one that is not a label image.
    """
    crops: list[MaskCrop] = []
    for k, data in enumerate(layers):
        where = f"labels layer {names[k]!r}" if k < len(names) else f"labels layer {k}"
        array = np.asarray(data)
        array = array.reshape(array.shape[-2:]) if array.ndim > 2 and all(n == 1 for n in array.shape[:-2]) else array
        if array.shape != shape:
            raise InputError(f"{where}: shape {array.shape} differs from the image's {shape}")
        crops += label_crops(array, where)
    return crops


def training_file_name(layer_name: str, index: tuple[int, ...] = ()) -> str:
    """The name an image layer's plane ``index`` gets in a training set: ``<layer name>[_<i>...].tif`` (path
    separators in the layer name become ``_``)."""
    stem = layer_name.replace("/", "_").replace("\\", "_").strip() or "image"
    return stem + "".join(f"_{i}" for i in index) + ".tif"


def add_to_training_set(folder: str | Path, file_name: str, pixels: np.ndarray, masks: Sequence[MaskCrop],
                        categories: Sequence[dict[str, Any]] = (DEFAULT_CATEGORY,), category_ids: Sequence[int] = ()
                        ) -> tuple[Path, int]:
    """Add one corrected image to the canonical dataset at ``folder`` (module docstring).

    Args:
        file_name: the image's name in ``images/`` (``.tif`` keeps any dtype; PNG needs 8- or 16-bit).
        masks: its instances; ``category_ids``: one per mask (default: the first category's id for all).

    Returns:
        (the folder's ``annotations.json``, the number of images it now holds).

    Raises:
        InputError: no instances, a folder that is not a dataset of ours (``gains.outputs`` rules), or bad masks.
    """
    folder = Path(folder)
    if not masks:
        raise InputError(f"{file_name}: no instances to add; segment or paint some first")
    cats = list(categories) or [DEFAULT_CATEGORY]
    ids = list(category_ids) or [int(cats[0]["id"])] * len(masks)
    samples: list[Sample] = []
    if (folder / "annotations.json").is_file():
        coco = load_coco(folder / "annotations.json")
        known = {int(c["id"]) for c in cats}
        cats += [c for c in coco.categories if int(c["id"]) not in known]
        for image in coco.images:
            if image.file_name == file_name:
                continue  # corrected again: the new version replaces it
            h, w = int(image.height or 0), int(image.width or 0)
            anns = coco.anns_by_image.get(image.id, [])
            kept = [(crop, int(a["category_id"])) for a in anns
                    if (crop := segmentation_to_crop(a["segmentation"], h, w)) is not None]
            samples.append(Sample(image.file_name, None, [c for c, _ in kept], [c for _, c in kept],
                                  source=folder / "images" / image.file_name, plane=image.plane))
    samples.append(Sample(file_name, np.asarray(pixels), list(masks), ids))
    info = {"source": "napari: corrected instances"}
    return write_dataset(folder, samples, cats, info=info, overwrite=folder.exists()), len(samples)


def _last_logged(metrics: Path) -> dict[str, Any] | None:
    """The last training line of a run's ``metrics.jsonl`` (validation lines skipped), or None."""
    try:
        lines = metrics.read_text().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:  # a line being written
            continue
        if row.get("split") != "val" and "loss" in row:
            return row
    return None


def finetune(folder: str | Path, run_dir: str | Path, weights: str, minutes: float, overrides: Sequence[str] = (),
             poll_s: float = 0.5) -> Generator[Progress, None, Path]:
    """Yield progress while fine-tuning ``weights`` on the dataset ``folder`` for ``minutes``; return the run.

    The notes ``train_folder`` prints (layout, variant, scale) are yielded as ``(0, 0, note)``.

    Raises:
        InputError: what ``train_folder`` refuses (an unknown model, a folder it cannot read, ...).
    """
    from gains.engine.recipe import train_folder  # torch: only when training starts

    run_dir = Path(run_dir)
    notes: list[str] = []
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["summary"] = train_folder(folder, run_dir, weights=weights, minutes=minutes, overrides=overrides,
                                             overwrite=run_dir.exists(), progress=False, say=notes.append)
        except BaseException as exc:  # handed to the generator, which raises it in the worker
            result["error"] = exc

    thread = threading.Thread(target=work, name="gains-finetune", daemon=True)
    start, budget, seen = time.monotonic(), minutes * 60.0, 0
    thread.start()
    while thread.is_alive():
        thread.join(poll_s)
        while seen < len(notes):
            yield 0.0, 0.0, notes[seen]
            seen += 1
        row = _last_logged(run_dir / "metrics.jsonl")
        elapsed = time.monotonic() - start
        what = f"iteration {row['iter']}, loss {row['loss']:.3f}" if row else "preparing"
        yield min(elapsed, budget), budget, what
    if "error" in result:
        raise result["error"]
    return run_dir
