"""The public Python API on arrays: ``gains.segment(image)``, or ``gains.Model`` to load a model once.

``Model.from_pretrained(spec)`` loads a shipped model (``"nuclei"``, ``"overlap"``), a run folder or a ``.pt``
checkpoint; ``Model.predict(image)`` segments one (H, W) or (H, W, C) array (or an image file) and returns a
:class:`Segmentation`. Both go through the one prediction path of ``gains predict``
(``Predictor.from_checkpoint``), so for the same image and options they give its instances and scores.

``import gains`` stays light: ``gains.Model``, ``gains.Segmentation`` and ``gains.segment`` import this module
(and torch) on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gains.config import Config
from gains.core.images import read_image
from gains.core.masks import Instance
from gains.core.parallel import resolve_device
from gains.core.planes import MIN_SIDE, PlaneChoice
from gains.errors import InputError
from gains.formats.coco import coco_results
from gains.formats.labels import label_layers
from gains.formats.measurements import measure
from gains.formats.result import ImageResult
from gains.inference.loading import checkpoint_stamp, load_model
from gains.inference.predictor import PredictOptions, Predictor

# PredictOptions a prediction may change; device and overrides are fixed when the model is loaded
CALL_OPTIONS = tuple(f.name for f in fields(PredictOptions) if f.name not in ("device", "overrides"))
ImageLike = np.ndarray | str | Path  # an array, or an image file


@dataclass(frozen=True)
class Segmentation:
    """One image's instances, by descending score.

    Attributes:
        instances: ``gains.core.masks.Instance`` each: ``category_id``, ``score``, ``mask`` (a ``MaskCrop``:
            bool ``mask.mask`` whose pixel [0, 0] is image pixel (``mask.y0``, ``mask.x0``)) and ``ga`` (the
            predicted GA map over the same crop, float32, 1 = no anomaly; None for Mask R-CNN models).
        categories: the model's categories ``[{"id", "name", ...}]``.
        height, width: the image's size in pixels.
    """

    instances: tuple[Instance, ...]
    categories: tuple[dict[str, Any], ...]
    height: int
    width: int

    def __len__(self) -> int:
        return len(self.instances)

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.instances)

    def __getitem__(self, k: int) -> Instance:
        return self.instances[k]

    @property
    def scores(self) -> np.ndarray:
        """float32 (N,) scores, descending."""
        return np.array([i.score for i in self.instances], dtype=np.float32)

    @property
    def category_ids(self) -> np.ndarray:
        """int64 (N,) COCO category ids."""
        return np.array([i.category_id for i in self.instances], dtype=np.int64)

    @property
    def boxes(self) -> np.ndarray:
        """int64 (N, 4) boxes x0, y0, x1, y1 at pixel edges (x1, y1 exclusive)."""
        return np.array([i.box for i in self.instances], dtype=np.int64).reshape(-1, 4)

    def full_mask(self, k: int) -> np.ndarray:
        """Instance ``k``'s full-size bool mask (height, width)."""
        return self.instances[k].mask.to_dense(self.height, self.width)

    def masks(self) -> Iterator[np.ndarray]:
        """The full-size bool masks (height, width), one at a time (crops are cheaper: ``inst.mask``)."""
        return (self.full_mask(k) for k in range(len(self)))

    def to_labels(self) -> np.ndarray:
        """int32 (height, width) label image: instance k (0-based, in order) has value k + 1, background 0.

        Where instances overlap, a pixel takes the higher-scoring one (the smaller value), so a lower-scoring
        instance may lose pixels, or all of them; :meth:`label_layers` keeps every instance whole.
        """
        labels = np.zeros((self.height, self.width), dtype=np.int32)
        for k in range(len(self) - 1, -1, -1):  # lowest score first: higher ones paint over it
            m = self.instances[k].mask
            labels[m.y0 : m.y1, m.x0 : m.x1][m.mask] = k + 1
        return labels

    def label_layers(self) -> list[np.ndarray]:
        """Label images (height, width), uint16 (uint32 beyond 65,535 instances) in which no instances overlap:
        one when none do, else the fewest greedy layers (``gains predict --format labels``'s files). Instance k
        has value k + 1 in its layer."""
        return label_layers(self.instances, self.height, self.width)

    def to_coco(self, image_id: int = 1) -> list[dict[str, Any]]:
        """COCO result entries (compressed RLE, xywh ``bbox``, ``score``), as ``results.json`` holds them."""
        return coco_results(list(self.instances), image_id, self.height, self.width)

    def measure(self, pixels: np.ndarray | None = None) -> dict[str, Any]:
        """Per-object measurements, as ``gains predict --format csv`` writes them: ``{column: values}`` with
        ``id`` (k + 1), category, score, area, centroid, bbox, perimeter, ... and the ``overlaps`` and ``touches``
        ids (``gains.formats.measurements``); ``pixels``: the image, for mean and max intensity per channel."""
        return measure(self.instances, self.categories, pixels=None if pixels is None else np.asarray(pixels))

    def to_result(self, pixels: np.ndarray | None = None) -> ImageResult:
        """The instances as the writers of ``gains.formats`` take them (``pixels``: for formats that draw)."""
        return ImageResult(self.instances, self.categories, self.height, self.width, pixels=pixels)


def as_pixels(image: ImageLike) -> np.ndarray:
    """The (H, W) or (H, W, C) pixels of an array or an image file (one plane, read as ``gains predict`` does).

    An array may be any real dtype; its channels are last, 1-3 of them (a fourth is taken as alpha and dropped).

    Raises:
        InputError: an unreadable file, or an array of another shape or type, in one line.
    """
    if isinstance(image, str | Path):
        return read_image(image, PlaneChoice())
    pixels = np.asarray(image)
    shape = "x".join(map(str, pixels.shape))
    if pixels.dtype.kind not in "buif":
        raise InputError(f"image of type {pixels.dtype}: pass real-valued pixels (integer or float)")
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and not 1 <= pixels.shape[2] <= 4):
        raise InputError(f"image of shape {shape}: expected (H, W) or (H, W, C) with 1-3 channels last (channels "
                         "first? np.moveaxis(image, 0, -1); a stack? pass one plane)")
    if min(pixels.shape[:2]) < MIN_SIDE:
        raise InputError(f"image of shape {shape}: gains needs at least {MIN_SIDE} pixels on each side")
    return pixels


class Model:
    """A loaded model and its default prediction options; build it with :meth:`from_pretrained`.

    Attributes:
        spec: what it was loaded from; options: its default ``PredictOptions``.
        categories: ``[{"label", "id", "name"}]``; device: the torch device it runs on.
        scale_note: one line on the scale its images are brought to.
    """

    def __init__(self, spec: str | Path, predictor: Predictor, options: PredictOptions,
                 loaded: tuple[torch.nn.Module, Config, list[dict[str, Any]]]) -> None:
        self.spec, self.options = spec, options
        self._predictor, self._loaded = predictor, loaded

    @classmethod
    def from_pretrained(cls, spec: str | Path = "nuclei", device: str = "auto", overrides: Sequence[str] = (),
                        **options: Any) -> Model:
        """Load a shipped model's name, a run folder or a ``.pt`` file (nothing is downloaded).

        Args:
            device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:i``.
            overrides: ``KEY=VALUE`` config changes (``gains predict --set``), e.g. ``model.detections_per_img=300``.
            options: default prediction options, as ``gains predict``'s: ``tile`` (network pixels, None: never
                tile), ``overlap``, ``merge``, ``scale`` or ``object_size`` (the objects' diameter in pixels),
                ``score_thresh`` (None: the model's), ``mask_thresh``.

        Raises:
            InputError: an unknown name, an unreadable checkpoint, a missing device or a refused option.
            TypeError: an option that is not one of the above.
        """
        if not isinstance(spec, str | Path):
            raise InputError(f"model {spec!r}: pass a shipped model's name, a run folder or a .pt file")
        opts = PredictOptions(device=device, overrides=tuple(overrides), **_options(options))
        loaded = load_model(spec, list(opts.overrides), resolve_device(device))
        return cls(spec, Predictor.from_checkpoint(spec, opts, load=lambda *_: loaded), opts, loaded)

    @property
    def categories(self) -> list[dict[str, Any]]:
        return self._predictor.categories

    @property
    def device(self) -> torch.device:
        return self._predictor.device

    @property
    def scale_note(self) -> str:
        return self._predictor.scale_note

    def predict(self, image: ImageLike, progress: Callable[[int, int], None] | None = None,
                **options: Any) -> Segmentation:
        """Segment one image.

        Args:
            image: an (H, W) or (H, W, C) array (see :func:`as_pixels`) or an image file's path.
            progress: called with (tiles done, tiles) after each tile.
            options: this call's changes to the model's options (``tile``, ``score_thresh``, ``scale`` or
                ``object_size``, ...: :meth:`from_pretrained`).

        Raises:
            InputError: an image or option refused, in one line.
        """
        pixels = as_pixels(image)
        predictor = self._predictor
        if options:
            changes = _options(options)
            if "scale" in changes or "object_size" in changes:  # one replaces the other
                changes = {"scale": None, "object_size": None, **changes}
            predictor = Predictor.from_checkpoint(self.spec, replace(self.options, **changes),
                                                  load=lambda *_: self._loaded)
        try:
            instances = predictor.predict(pixels, progress=progress)
        except ValueError as exc:  # e.g. non-finite pixels
            raise InputError(f"image of shape {'x'.join(map(str, pixels.shape))}: {exc}") from exc
        h, w = pixels.shape[:2]
        return Segmentation(tuple(instances), tuple(predictor.categories), h, w)


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(CALL_OPTIONS))
    if unknown:
        raise TypeError(f"unknown prediction option(s) {', '.join(unknown)}; known: {', '.join(CALL_OPTIONS)}")
    return options


_last: tuple[tuple[Any, ...], Model] | None = None  # segment()'s model, kept while the same and unchanged


def segment(image: ImageLike, model: str | Path = "nuclei", device: str = "auto", overrides: Sequence[str] = (),
            **options: Any) -> Segmentation:
    """Segment one image in one call: ``Model.from_pretrained(model, device, overrides).predict(image,
    **options)``, the loaded model kept for the next call with the same model, device and overrides.

    Raises:
        InputError: as :meth:`Model.from_pretrained` and :meth:`Model.predict`.
    """
    global _last
    key = (str(model), device, tuple(overrides), checkpoint_stamp(model) if isinstance(model, str | Path) else 0)
    if _last is None or _last[0] != key:
        _last = None  # free the old model before loading another
        _last = key, Model.from_pretrained(model, device, overrides)
    return _last[1].predict(image, **options)
