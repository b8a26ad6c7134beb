"""Intensity normalisation: pixels of any dtype and range -> float32 (H, W, 3) in [0, 1], the network input.

Every mode is an affine map per channel, ``(x - lo) / (hi - lo)``, whose ``lo``/``hi`` come from:

- ``percentile`` (the default of new configs): the image's own low/high percentiles, per channel (default
  1 and 99.8, as cellpose and StarDist); the result is clipped to [0, 1]. 8-bit PNGs, 12-bit values in
  uint16 TIFFs and float images all reach the network with the same spread. A channel whose percentiles
  coincide falls back to its min/max, and a constant channel becomes 0.
- ``dtype``: integers divided by their dtype's maximum (not clipped), floats clipped to [0, 1]: the behaviour
  of every checkpoint saved before this setting existed. Right for data that really spans its dtype.
- ``fixed``: a user-given ``(min, max)`` for every image, clipped: for quantitative work where the same raw
  value must mean the same input in every image.

Channels: grey is replicated to 3 channels, two channels become (c0, c1, c0), and beyond three the first
three are kept (alpha dropped). Statistics are taken on the image once (``fit``) and then applied to it or
to any crop of it (``apply``), so the tiles of a large image share one normalisation. Non-finite pixels are
refused (``ValueError``), never turned into NaN tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("percentile", "dtype", "fixed")
LEGACY_MODE = "dtype"  # what checkpoints saved without the setting were trained with
DEFAULT_PERCENTILES = (1.0, 99.8)
MAX_STAT_PIXELS = 1 << 22  # percentiles of larger images are taken on a regular subsample of about this size


def stat_step(height: int, width: int) -> int:
    """Row and column step of the regular subsample ``Normalisation.fit`` takes its percentiles on: 1 up to
    ``MAX_STAT_PIXELS`` pixels, else the smallest step that brings the image down to about that many."""
    if height * width <= MAX_STAT_PIXELS:
        return 1
    return int(np.ceil(np.sqrt(height * width / MAX_STAT_PIXELS)))


@dataclass(frozen=True)
class Scaling:
    """Per-channel ``lo``/``hi`` (float64 [C]) of one image; ``clip`` whether results are clipped to [0, 1]."""

    lo: np.ndarray
    hi: np.ndarray
    clip: bool


def select_channels(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C') view with C' in {1, 2, 3}: grey gets a channel axis, channels beyond the third are dropped."""
    img = np.asarray(pixels)
    if img.ndim == 2:
        return img[..., None]
    if img.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {img.shape}")
    return img[..., :3]


def to_three(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) from (H, W, C') with C' in {1, 2, 3} (grey replicated, two channels as c0, c1, c0)."""
    if img.shape[-1] == 1:
        return np.repeat(img, 3, axis=-1)
    if img.shape[-1] == 2:
        return np.concatenate([img, img[..., :1]], axis=-1)
    return img


@dataclass(frozen=True)
class Normalisation:
    """How raw pixels become network input (see the module docstring).

    Args:
        mode: ``percentile`` | ``dtype`` | ``fixed``.
        percentiles: (low, high) percentiles in [0, 100], low < high (``percentile`` mode).
        value_range: (min, max) raw values mapped to 0 and 1, min < max (``fixed`` mode, required there).
    """

    mode: str = "percentile"
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    value_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown input normalisation {self.mode!r}; choose from {', '.join(MODES)}")
        low, high = (float(v) for v in self.percentiles)
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"input percentiles must satisfy 0 <= low < high <= 100, got {list(self.percentiles)}")
        if self.mode == "fixed":
            if self.value_range is None or len(self.value_range) != 2:
                raise ValueError("input normalisation 'fixed' needs input_range: [min, max]")
            vmin, vmax = (float(v) for v in self.value_range)
            if not (np.isfinite(vmin) and np.isfinite(vmax) and vmin < vmax):
                raise ValueError(f"input_range must be two finite numbers min < max, got {list(self.value_range)}")

    @classmethod
    def of_model(cls, model: object) -> Normalisation:
        """From a ``ModelConfig`` (its ``input_norm``, ``input_percentiles`` and ``input_range``)."""
        percentiles, value_range = list(model.input_percentiles), model.input_range
        if len(percentiles) != 2:
            raise ValueError(f"model.input_percentiles must be [low, high], got {percentiles}")
        return cls(model.input_norm, (float(percentiles[0]), float(percentiles[1])),
                   None if value_range is None else tuple(float(v) for v in value_range))

    def describe(self) -> str:
        """One line for logs and reports."""
        if self.mode == "percentile":
            return f"percentile {self.percentiles[0]:g}-{self.percentiles[1]:g} per image and channel"
        if self.mode == "fixed":
            return f"fixed range {self.value_range[0]:g}-{self.value_range[1]:g}"
        return "dtype (integers / dtype maximum, floats clipped to [0, 1])"

    def fit(self, pixels: np.ndarray | object) -> Scaling:
        """The per-channel scaling of an (H, W) or (H, W, C) image: an np.ndarray, or a lazy plane (any object
        with ``shape`` and numpy-style slicing, e.g. ``gains.core.lazy.LazyPlane``) of which only the regular
        subsample the statistics use (``stat_step``) is read. Both give the same scaling for the same pixels;
        non-finite pixels are looked for in the whole of an array, in the subsample of a lazy plane.

        Raises:
            ValueError: non-finite pixels, or an image that is not 2-D/3-D.
        """
        step = stat_step(*pixels.shape[:2])
        if isinstance(pixels, np.ndarray):
            self._check(pixels)
        else:
            pixels = self._check(pixels[::step, ::step])
            step = 1
        img = select_channels(pixels)
        if img.dtype.kind == "b":
            img = img.astype(np.uint8)
        channels = img.shape[-1]
        if self.mode == "dtype":
            if img.dtype.kind in "ui":
                return Scaling(np.zeros(channels), np.full(channels, float(np.iinfo(img.dtype).max)), clip=False)
            return Scaling(np.zeros(channels), np.ones(channels), clip=True)
        if self.mode == "fixed":
            vmin, vmax = self.value_range
            return Scaling(np.full(channels, float(vmin)), np.full(channels, float(vmax)), clip=True)
        sample = img[::step, ::step].reshape(-1, channels)
        lo, hi = np.percentile(sample, self.percentiles, axis=0).astype(np.float64)
        flat = hi <= lo
        if np.any(flat):
            lo = np.where(flat, sample.min(axis=0), lo).astype(np.float64)
            hi = np.where(flat, sample.max(axis=0), hi).astype(np.float64)
        return Scaling(lo, hi, clip=True)

    @staticmethod
    def _check(pixels: np.ndarray) -> np.ndarray:
        """``pixels`` if their type can be normalised and every value is finite.

        Raises:
            ValueError: another pixel type, or non-finite values (counted).
        """
        img = select_channels(pixels)
        if img.dtype.kind not in "buif":
            raise ValueError(f"unsupported pixel type {img.dtype}")
        if img.dtype.kind == "f":
            bad = np.count_nonzero(~np.isfinite(img))
            if bad:
                raise ValueError(f"{bad} non-finite pixel value(s) (NaN or inf); fix or mask them first")
        return pixels

    def apply(self, pixels: np.ndarray, scaling: Scaling) -> np.ndarray:
        """Float32 (H, W, 3) of an image (or a crop of the image ``scaling`` was fitted on)."""
        img = select_channels(pixels)
        if img.dtype.kind == "b":
            img = img.astype(np.uint8)
        span = scaling.hi - scaling.lo
        constant = span <= 0
        out = img.astype(np.float32)
        if not np.all(scaling.lo == 0):
            out -= scaling.lo.astype(np.float32)
        out /= np.where(constant, 1.0, span).astype(np.float32)
        if np.any(constant):
            out[..., constant] = 0.0
        if scaling.clip:
            np.clip(out, 0.0, 1.0, out=out)
        return to_three(out)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """``apply(pixels, fit(pixels))``: float32 (H, W, 3) in [0, 1]."""
        return self.apply(pixels, self.fit(pixels))


def to_display(image: np.ndarray, normalisation: Normalisation | None = None) -> np.ndarray:
    """Float64 (H, W, 3) in [0, 1] of reader pixels (H, W) or (H, W, C), for figures: scaled by ``normalisation``
    (what a model sees) when given, else stretched from the image's min to its max, grey replicated, two
    channels shown by the first, alpha dropped."""
    img = np.asarray(image)
    if normalisation is not None:
        return np.clip(normalisation(img), 0.0, 1.0).astype(np.float64)
    img = select_channels(img).astype(np.float64)
    if img.shape[-1] == 2:
        img = img[..., :1]
    img = to_three(img)
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


DEFAULT = Normalisation()
LEGACY = Normalisation(LEGACY_MODE)
UNIT = Normalisation("fixed", value_range=(0.0, 1.0))  # for values already normalised to [0, 1]

__all__ = ["DEFAULT", "LEGACY", "LEGACY_MODE", "MODES", "UNIT", "Normalisation", "Scaling", "select_channels",
           "to_display", "to_three"]
