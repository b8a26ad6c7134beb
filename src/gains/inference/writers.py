"""Writers of predictions: COCO results (RLE, overlaps kept), label TIFFs, overlays, GA maps."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from gains.atomic import atomic_write
from gains.core.masks import MaskCrop, crop_bbox, crop_to_rle, tight_crop
from gains.imageio import encode_tiff, to_display
from gains.inference.predictor import Instance
from gains.intensity import UNIT, Normalisation

OVERLAY_MAX_SIDE = 4096
BAND_ROWS = 512  # image rows converted (colour-mapped, scaled) at a time: bounds the temporaries


def coco_results(instances: list[Instance], image_id: int, height: int, width: int) -> list[dict[str, Any]]:
    """COCO result entries: each instance its own compressed RLE."""
    return [{"image_id": image_id, "category_id": i.category_id, "score": i.score,
             "segmentation": crop_to_rle(i.mask, height, width), "bbox": crop_bbox(i.mask)} for i in instances]


def label_layers(instances: list[Instance], height: int, width: int) -> list[np.ndarray]:
    """Label images (uint16, uint32 beyond 65,535 instances): one when no instances overlap, else the
    fewest greedy layers in which none do. Instance k (score order) has value k + 1 in its layer."""
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


def ga_image(instances: list[Instance], height: int, width: int) -> np.ndarray | None:
    """Per-pixel maximum of the predicted GA maps (1 where no instance predicts one), float32 (H, W)."""
    if not any(i.ga is not None for i in instances):
        return None
    out = np.ones((height, width), dtype=np.float32)
    for i in instances:
        if i.ga is not None:
            region = out[i.mask.y0 : i.mask.y1, i.mask.x0 : i.mask.x1]
            np.maximum(region, i.ga, out=region)
    return out


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _downsampled(crop: MaskCrop, step: int) -> MaskCrop | None:
    """The crop's pixels on the grid of every ``step``-th image row and column, as a tight crop in the grid's
    coordinates; None when no grid point falls on the instance. Never larger than the crop."""
    if step == 1:
        return crop
    r0, c0 = -(-crop.y0 // step), -(-crop.x0 // step)  # first grid row/col inside the crop
    sub = crop.mask[r0 * step - crop.y0 :: step, c0 * step - crop.x0 :: step]
    return tight_crop(sub, r0, c0)


def _display(small: np.ndarray, pixels: np.ndarray, normalisation: Normalisation | None) -> np.ndarray:
    """(h, w, 3) uint8 of ``small`` (``pixels`` downscaled) as ``to_display`` shows it: scaled by
    ``normalisation`` fitted on the whole ``pixels`` (a band of rows at a time), else stretched min to max."""
    if normalisation is None:
        return _bytes(to_display(small))
    scaling = normalisation.fit(pixels)
    out = np.empty((*small.shape[:2], 3), dtype=np.uint8)
    for r in range(0, small.shape[0], BAND_ROWS):
        out[r : r + BAND_ROWS] = _bytes(to_display(normalisation.apply(small[r : r + BAND_ROWS], scaling), UNIT))
    return out


def _bytes(rgb: np.ndarray) -> np.ndarray:
    """uint8 of a float image in [0, 1] (``round(255 * value)``), scaling ``rgb`` in place."""
    rgb *= 255
    return np.round(rgb, out=rgb).astype(np.uint8)


def write_overlay(path: Path, pixels: np.ndarray, instances: list[Instance],
                  normalisation: Normalisation | None = None) -> None:
    """PNG of the image with every instance outlined in its own colour (downscaled beyond
    ``OVERLAY_MAX_SIDE`` px), shown with the model's ``normalisation`` when given (statistics of the whole
    image, not of the downscaled one). Instances stay crops and the image is converted a band at a time:
    memory is about 3 bytes a (downscaled) pixel, whatever the number of instances."""
    from gains.visualize import paint_outlines

    h, w = pixels.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / OVERLAY_MAX_SIDE)))
    small = pixels[::step, ::step]
    rgb = paint_outlines(_display(small, pixels, normalisation), [_downsampled(i.mask, step) for i in instances])
    payload = _png(rgb)
    atomic_write(path, lambda fh: fh.write(payload))


def write_labels(out_dir: Path, stem: str, instances: list[Instance], height: int, width: int) -> list[Path]:
    """``<stem>_labels.tif``, or ``<stem>_labels_layer<k>.tif`` per layer when instances overlap."""
    layers = label_layers(instances, height, width)
    names = [f"{stem}_labels.tif"] if len(layers) == 1 else [f"{stem}_labels_layer{k}.tif" for k in range(len(layers))]
    for name, layer in zip(names, layers, strict=True):
        payload = encode_tiff(layer)
        atomic_write(out_dir / name, lambda fh, b=payload: fh.write(b))
    return [out_dir / n for n in names]


def _inferno(ga: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 inferno colours of a GA image, 1 (no anomaly) to its maximum, a band of rows at a time."""
    import matplotlib

    cmap = matplotlib.colormaps["inferno"]
    top = float(ga.max())
    rgb = np.empty((*ga.shape, 3), dtype=np.uint8)
    for r in range(0, ga.shape[0], BAND_ROWS):
        band = ga[r : r + BAND_ROWS]
        norm = (band - 1.0) / (top - 1.0) if top > 1.0 else np.zeros_like(band)
        rgb[r : r + BAND_ROWS] = cmap(np.clip(norm, 0, 1), bytes=True)[..., :3]
    return rgb


def write_ga(out_dir: Path, stem: str, instances: list[Instance], height: int, width: int) -> list[Path]:
    """``<stem>_ga.tif`` (float32) and ``<stem>_ga.png`` (inferno colour map) of the predicted GA map."""
    ga = ga_image(instances, height, width)
    if ga is None:
        return []
    payload = encode_tiff(ga)
    atomic_write(out_dir / f"{stem}_ga.tif", lambda fh: fh.write(payload))
    png = _png(_inferno(ga))
    atomic_write(out_dir / f"{stem}_ga.png", lambda fh: fh.write(png))
    return [out_dir / f"{stem}_ga.tif", out_dir / f"{stem}_ga.png"]
