"""Reading images: sizes without decoding pixels, and pixels for figures and training.

PNG, JPEG and TIFF are supported (16-bit and multi-channel included: TIFF through tifffile, the rest
through Pillow). Every failure raises ``InputError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gains.errors import InputError
from gains.intensity import Normalisation

TIFF_SUFFIXES = (".tif", ".tiff")


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image file not found")
    return path


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, checking that the file is readable and not truncated.

    Raises:
        InputError: the file is missing, unreadable or corrupt.
    """
    path = _existing(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tif.series[0].shape
                axes = tif.series[0].axes
            if "Y" not in axes or "X" not in axes:
                raise ValueError(f"no Y/X axes in TIFF series (axes {axes!r})")
            return int(shape[axes.index("Y")]), int(shape[axes.index("X")])
        from PIL import Image

        with Image.open(path) as im:
            width, height = im.size
            im.verify()
        return int(height), int(width)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: unreadable image ({exc})") from exc


def read_image(path: str | Path) -> np.ndarray:
    """Pixels of an image file as an (H, W) or (H, W, C) array of its own dtype (RGBA PNGs keep 4 channels).

    Raises:
        InputError: the file is missing, unreadable or corrupt.
    """
    path = _existing(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            return np.asarray(tifffile.imread(path))
        from PIL import Image

        with Image.open(path) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            return np.asarray(im)
    except Exception as exc:
        raise InputError(f"{path}: unreadable image ({exc})") from exc


def to_display(image: np.ndarray, normalisation: Normalisation | None = None) -> np.ndarray:
    """An (H, W, 3) float image in [0, 1] for figures: grey replicated, alpha dropped; scaled by
    ``normalisation`` (what a model sees) when given, else by a per-image min/max stretch."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3, 4) and img.shape[-1] not in (1, 3, 4):
        img = np.moveaxis(img, 0, -1)
    if normalisation is not None:
        return np.clip(normalisation(img), 0.0, 1.0).astype(np.float64)
    img = img.astype(np.float64)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] == 4:
        img = img[..., :3]
    if img.shape[-1] == 2:
        img = img[..., :1]
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def encode_tiff(array: np.ndarray) -> bytes:
    """TIFF bytes of an array (full bit depth), for atomic writes."""
    import io

    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, array)
    return buf.getvalue()
