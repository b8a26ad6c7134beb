"""Label TIFFs: instance k (1, 2, ... in order) has value k, background 0; uint16, uint32 beyond 65,535 instances.

Predictions: ``<stem>_labels.tif`` beside the other outputs, or, where instances overlap, one
``<stem>_labels_layer<k>.tif`` per layer of the fewest greedy layers in which none do (k = 0, 1, ...).
Ground truth (``gains export --to labels``): a dataset the label converter reads back, ``labels/<stem>.tif``
beside a copy of the image in ``images/``; a label image cannot hold overlapping instances, so they are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gains.atomic import atomic_write
from gains.core.images import encode_tiff
from gains.core.masks import Instance
from gains.formats.result import ImageResult

COMMANDS = ("predict", "export")
HELP = "label TIFFs"


def label_layers(instances: Sequence[Instance], height: int, width: int) -> list[np.ndarray]:
    """Label images (uint16, uint32 beyond 65,535 instances): one when no instances overlap, else the
    fewest greedy layers in which none do. Instance k (in order) has value k + 1 in its layer."""
    dtype = np.uint16 if len(instances) < 65536 else np.uint32
    layers: list[np.ndarray] = []
    for k, inst in enumerate(instances):
        m = inst.mask
        for layer in layers:
            region = layer[m.y0 : m.y1, m.x0 : m.x1]
            if not region[m.mask].any():
                region[m.mask] = k + 1
                break
        else:
            layer = np.zeros((height, width), dtype=dtype)
            layer[m.y0 : m.y1, m.x0 : m.x1][m.mask] = k + 1
            layers.append(layer)
    return layers or [np.zeros((height, width), dtype=dtype)]


def _first_overlap(instances: Sequence[Instance], first_layer: np.ndarray) -> tuple[int, int]:
    """(i, j), i < j: the first instance j not in ``first_layer`` (of ``label_layers``) and the first instance
    i it overlaps. Every instance before j is in that layer, and j is not because it overlaps one of them."""
    for j, inst in enumerate(instances):
        m = inst.mask
        values = first_layer[m.y0 : m.y1, m.x0 : m.x1][m.mask]
        if (values != j + 1).any():
            return int(values[values > 0].min()) - 1, j
    raise AssertionError("every instance is in the first layer")  # pragma: no cover


def _write_tiff(path: Path, label: np.ndarray) -> Path:
    payload = encode_tiff(label)
    atomic_write(path, lambda fh: fh.write(payload))
    return path


def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """The label TIFF(s) of one image (see the module docstring).

    Raises:
        ValueError: ground truth whose instances overlap, naming the first two (their ids).
    """
    layers = label_layers(result.instances, result.height, result.width)
    if result.truth:
        if len(layers) > 1:
            i, j = _first_overlap(result.instances, layers[0])
            ids = result.numbers
            raise ValueError(f"annotations {ids[i]} and {ids[j]} overlap; a label image cannot hold overlapping "
                             "instances (use --to masks)")
        return [_write_tiff(out_dir / "labels" / f"{stem}.tif", layers[0]), result.copy_image(out_dir / "images")]
    if len(layers) == 1:
        return [_write_tiff(out_dir / f"{stem}_labels.tif", layers[0])]
    return [_write_tiff(out_dir / f"{stem}_labels_layer{k}.tif", layer) for k, layer in enumerate(layers)]
