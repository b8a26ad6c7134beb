"""``<stem>_overlay.png``: the image with every instance outlined in its own colour, for a quick look.

Images larger than ``OVERLAY_MAX_SIDE`` pixels are downscaled (every ``step``-th row and column) and the
instances with them. Only those rows and columns are read (``pixels[::step, ::step]``), so the pixels may be a
lazy plane or a zarr array of a whole slide that never enters memory. The image is shown as the model saw it (its
normalisation, with the statistics the model used: ``Normalisation.fit``, which reads a lazy plane's regular
subsample only), else stretched from its minimum to its maximum.
Instances stay crops and the image is converted a band of rows at a time: memory is about 3 bytes a (downscaled)
pixel plus the downscaled image, whatever the number of instances or the image's full size.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gains.atomic import atomic_write
from gains.core.masks import Instance, MaskCrop, tight_crop
from gains.formats.result import ImageResult, Pixels
from gains.intensity import UNIT, Normalisation, to_display

COMMANDS = ("predict",)
HELP = "outlines over the image"
OVERLAY_MAX_SIDE = 4096
BAND_ROWS = 512  # image rows converted (colour-mapped, scaled) at a time: bounds the temporaries


def png_bytes(array: np.ndarray) -> bytes:
    """PNG file of a uint8 (H, W) or (H, W, 3) array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def downsampled(crop: MaskCrop, step: int) -> MaskCrop | None:
    """The crop's pixels on the grid of every ``step``-th image row and column, as a tight crop in the grid's
    coordinates; None when no grid point falls on the instance. Never larger than the crop."""
    if step == 1:
        return crop
    r0, c0 = -(-crop.y0 // step), -(-crop.x0 // step)  # first grid row/col inside the crop
    sub = crop.mask[r0 * step - crop.y0 :: step, c0 * step - crop.x0 :: step]
    return tight_crop(sub, r0, c0)


def _display(small: np.ndarray, pixels: np.ndarray | Pixels, normalisation: Normalisation | None) -> np.ndarray:
    """(h, w, 3) uint8 of ``small`` (``pixels`` downscaled) as ``to_display`` shows it: scaled by
    ``normalisation`` fitted on ``pixels`` as the model's was (a band of rows at a time), else stretched min to
    max."""
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


def render(pixels: Pixels, instances: Sequence[Instance], normalisation: Normalisation | None = None) -> bytes:
    """The overlay PNG of ``pixels`` ((H, W) or (H, W, C): an array, or a lazy plane read only at the
    downscaled grid) and its ``instances`` (see the module docstring)."""
    from gains.visualize import paint_outlines

    h, w = pixels.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / OVERLAY_MAX_SIDE)))
    small = np.asarray(pixels[::step, ::step])
    rgb = paint_outlines(_display(small, pixels, normalisation), [downsampled(i.mask, step) for i in instances])
    return png_bytes(rgb)


def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>_overlay.png`` of ``result.pixels``.

    Raises:
        ValueError: the result carries no pixels.
    """
    if result.pixels is None:
        raise ValueError(f"{stem}: an overlay needs the image's pixels")
    payload = render(result.pixels, result.instances, result.normalisation)
    path = out_dir / f"{stem}_overlay.png"
    atomic_write(path, lambda fh: fh.write(payload))
    return [path]
