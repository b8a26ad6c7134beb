"""The predicted GA map of an image: ``<stem>_ga.tif`` (float32, the per-pixel maximum over the instances'
maps, 1 = no anomaly) and ``<stem>_ga.png`` (inferno colours from 1 to its maximum). Nothing when no instance
carries a GA map (a Mask R-CNN model without the GA head).

Both are made from the instances' crops a window at a time, never as a full-size array: beyond
``labels.TILE`` px a side the TIFF is tiled (``labels.TILE`` squared tiles, deflated, painted one by one; tiles
no instance reaches are one shared constant tile), and the PNG is drawn on the grid of every ``step``-th row
and column, at most ``overlay.OVERLAY_MAX_SIDE`` a side, as the overlay is."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from gains.atomic import atomic_path, atomic_write
from gains.core.images import encode_tiff
from gains.core.masks import Instance
from gains.formats import labels, overlay
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


def _inferno(ga: np.ndarray, top: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8 inferno colours of a GA image, 1 (no anomaly) to ``top`` (default: its maximum), a band
    of rows at a time."""
    import matplotlib

    cmap = matplotlib.colormaps["inferno"]
    top = float(ga.max()) if top is None else top
    rgb = np.empty((*ga.shape, 3), dtype=np.uint8)
    for r in range(0, ga.shape[0], overlay.BAND_ROWS):
        band = ga[r : r + overlay.BAND_ROWS]
        norm = (band - 1.0) / (top - 1.0) if top > 1.0 else np.zeros_like(band)
        rgb[r : r + overlay.BAND_ROWS] = cmap(np.clip(norm, 0, 1), bytes=True)[..., :3]
    return rgb


def _window(instances: Sequence[Instance], members: Sequence[int], y0: int, x0: int, height: int, width: int
            ) -> np.ndarray:
    """The (height, width) window at (``y0``, ``x0``) of ``ga_image``, from the instances ``members`` (indices)
    whose GA maps reach it."""
    out = np.ones((height, width), dtype=np.float32)
    for k in members:
        m, ga = instances[k].mask, instances[k].ga
        r0, r1, c0, c1 = max(m.y0, y0), min(m.y1, y0 + height), max(m.x0, x0), min(m.x1, x0 + width)
        if r0 < r1 and c0 < c1:
            region = out[r0 - y0 : r1 - y0, c0 - x0 : c1 - x0]
            np.maximum(region, ga[r0 - m.y0 : r1 - m.y0, c0 - m.x0 : c1 - m.x0], out=region)
    return out


def _tiles(instances: Sequence[Instance], index: dict, height: int, width: int) -> Iterator[bytes]:
    """The deflated float32 tiles of the GA image, row by row (edge tiles padded with 1)."""
    tile = labels.TILE
    empty = zlib.compress(np.ones((tile, tile), dtype="<f4").tobytes(), 9)
    for r in range(-(-height // tile)):
        for c in range(-(-width // tile)):
            members = index.get((0, r, c))
            if members is None:
                yield empty
            else:
                window = _window(instances, members, r * tile, c * tile, tile, tile).astype("<f4")
                yield zlib.compress(window.tobytes(), labels.DEFLATE_LEVEL)


def _preview(instances: Sequence[Instance], height: int, width: int) -> np.ndarray:
    """``ga_image`` on the grid of every ``step``-th row and column (``overlay.OVERLAY_MAX_SIDE`` a side at
    most), from the crops' own grid points."""
    step = max(1, int(np.ceil(max(height, width) / overlay.OVERLAY_MAX_SIDE)))
    out = np.ones((-(-height // step), -(-width // step)), dtype=np.float32)
    for inst in instances:
        if inst.ga is None:
            continue
        m = inst.mask
        r0, c0 = -(-m.y0 // step), -(-m.x0 // step)  # first grid row/col inside the crop
        sub = inst.ga[r0 * step - m.y0 :: step, c0 * step - m.x0 :: step]
        if sub.size:
            region = out[r0 : r0 + sub.shape[0], c0 : c0 + sub.shape[1]]
            np.maximum(region, sub, out=region)
    return out


def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>_ga.tif`` and ``<stem>_ga.png``, or nothing (see the module docstring)."""
    instances, h, w = result.instances, result.height, result.width
    with_ga = [k for k, i in enumerate(instances) if i.ga is not None]
    if not with_ga:
        return []
    tif = out_dir / f"{stem}_ga.tif"
    crops = [i.mask if i.ga is not None else None for i in instances]
    index = labels.tile_index(crops, np.zeros(len(instances), dtype=np.int64), labels.TILE)
    if h <= labels.TILE and w <= labels.TILE:
        payload = encode_tiff(_window(instances, with_ga, 0, 0, h, w))
        atomic_write(tif, lambda fh: fh.write(payload))
    else:
        import tifffile

        with atomic_path(tif) as tmp:
            tifffile.imwrite(tmp, _tiles(instances, index, h, w), shape=(h, w), dtype="<f4", byteorder="<",
                             tile=(labels.TILE, labels.TILE), compression="zlib")
    top = max(float(instances[k].ga.max()) for k in with_ga)
    png = overlay.png_bytes(_inferno(_preview(instances, h, w), top))
    atomic_write(out_dir / f"{stem}_ga.png", lambda fh: fh.write(png))
    return [tif, out_dir / f"{stem}_ga.png"]
