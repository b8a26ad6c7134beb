"""The predicted GA map of an image: ``<stem>_ga.tif`` (float32, the per-pixel maximum over the instances'
maps, 1 = no anomaly) and ``<stem>_ga.png`` (inferno colours from 1 to its maximum). Nothing when no instance
carries a GA map (a Mask R-CNN model without the GA head)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gains.atomic import atomic_write
from gains.core.images import encode_tiff
from gains.core.masks import Instance
from gains.formats import overlay
from gains.formats.result import ImageResult

COMMANDS = ("predict",)
HELP = "GA map TIFF and PNG"


def ga_image(instances: Sequence[Instance], height: int, width: int) -> np.ndarray | None:
    """Per-pixel maximum of the predicted GA maps (1 where no instance predicts one), float32 (H, W)."""
    if not any(i.ga is not None for i in instances):
        return None
    out = np.ones((height, width), dtype=np.float32)
    for i in instances:
        if i.ga is not None:
            region = out[i.mask.y0 : i.mask.y1, i.mask.x0 : i.mask.x1]
            np.maximum(region, i.ga, out=region)
    return out


def _inferno(ga: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 inferno colours of a GA image, 1 (no anomaly) to its maximum, a band of rows at a time."""
    import matplotlib

    cmap = matplotlib.colormaps["inferno"]
    top = float(ga.max())
    rgb = np.empty((*ga.shape, 3), dtype=np.uint8)
    for r in range(0, ga.shape[0], overlay.BAND_ROWS):
        band = ga[r : r + overlay.BAND_ROWS]
        norm = (band - 1.0) / (top - 1.0) if top > 1.0 else np.zeros_like(band)
        rgb[r : r + overlay.BAND_ROWS] = cmap(np.clip(norm, 0, 1), bytes=True)[..., :3]
    return rgb


def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>_ga.tif`` and ``<stem>_ga.png``, or nothing (see the module docstring)."""
    ga = ga_image(result.instances, result.height, result.width)
    if ga is None:
        return []
    payload = encode_tiff(ga)
    atomic_write(out_dir / f"{stem}_ga.tif", lambda fh: fh.write(payload))
    png = overlay.png_bytes(_inferno(ga))
    atomic_write(out_dir / f"{stem}_ga.png", lambda fh: fh.write(png))
    return [out_dir / f"{stem}_ga.tif", out_dir / f"{stem}_ga.png"]
