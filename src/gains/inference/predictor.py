"""Predict instances in images of any size: whole images, or tiles merged across seams.

An instance is kept as a tight mask crop in image coordinates (never a full-size array), with its
category id, score, box and, for GAInS models, the predicted GA map over its box (1 = no anomaly).
Large images are cut into ``tile`` x ``tile`` tiles overlapping by ``overlap`` pixels, and the tiles'
detections become one set by one of two rules (``merge``):
- ``central`` (the default): each tile owns a core (the image split at the middle of every overlap), and a
  detection is kept only by the tile whose core holds its box centre, with that tile's mask: each object comes
  from the tile that saw it most whole, provided the overlap is at least an object's diameter;
- ``union``: detections of neighbouring tiles that agree inside the tiles' shared band (mask IoU there
  > 0.5) are one object cut by the seam, merged as the union of their masks (for objects larger than the
  overlap). On mosaics of held-out scenes ``central`` scored closer to whole-image prediction (docs/BENCHMARKS.md).

The model's per-image limits (RPN proposals before and after NMS, detections) are set for an image of its
test size (``min_size_test`` squared, network pixels). A larger network image, whole or tile, gets them
scaled by its area over that (never below the model's own), so the objects a model may return per unit
area do not depend on whether a large image is predicted whole or in tiles. The detection limit stops
growing at the largest network image training can make (longest training short side x ``max_size``):
every detection goes through the mask and GA heads (256 x 28 x 28 floats per layer), so a 1024 px tile of
the ``nuclei`` model could ask them for 2,844 mostly low-score detections; capped, it asks for at most 722.
A tile or whole image that reaches the cap with every detection above the score threshold is logged, with
the advice to tile smaller.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

from gains.config import Config
from gains.core.masks import Instance, tight_crop, upscale  # Instance: what the writers take
from gains.core.parallel import resolve_device
from gains.data.dataset import image_to_tensor
from gains.errors import InputError
from gains.inference.loading import load_model, resolve_scale
from gains.inference.suppress import box_nms_for, check_suppression, suppress
from gains.inference.tiles import keep_central, merge_tiles
from gains.intensity import DEFAULT, Normalisation, Scaling

log = logging.getLogger("gains.inference")

MERGES = ("union", "central")  # how the detections of overlapping tiles become one set (module docstring)
Loader = Callable[[str | Path, list[str], torch.device], tuple[torch.nn.Module, Config, list[dict[str, Any]]]]


def check_tiling(tile: int | None, overlap: int, merge: str) -> None:
    """Refuse an overlap not smaller than the tile, or an unknown tile merge rule.

    Raises:
        ValueError: naming the problem.
    """
    if tile is not None and overlap >= tile:
        raise ValueError("overlap must be smaller than the tile")
    if merge not in MERGES:
        raise ValueError(f"tile merge must be one of {MERGES}, got {merge!r}")


@dataclass(frozen=True)
class PredictOptions:
    """How a checkpoint predicts: everything ``gains predict``, ``gains eval``, napari and the report choose.

    Attributes:
        tile, overlap, merge: tiling in network pixels (``Predictor``); tile None: whole images.
        scale, object_size: at most one; see ``gains.inference.loading.resolve_scale`` (neither: the model's rule).
        score_thresh: instances below are dropped; None: the checkpoint's ``eval.score_thresh``.
        mask_thresh: probability threshold of the masks.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:i``.
        overrides: ``KEY=VALUE`` config changes for inference (e.g. ``model.detections_per_img=300``).
        nms: ``box`` (the model's box NMS only) or ``mask`` (box NMS loosened, then mask-IoU NMS at the model's
            ``box_nms_thresh``: crossing objects with one box both kept); ``gains.inference.suppress``.
        contained: None, or drop an instance with at least this share of its pixels in a higher-scored one.

    Raises:
        InputError: an overlap not smaller than the tile, an unknown merge rule or NMS mode, or a contained
            fraction outside (0, 1], as one line.
    """

    tile: int | None = 1024
    overlap: int = 128
    merge: str = "central"
    scale: float | None = None
    object_size: float | None = None
    score_thresh: float | None = None
    mask_thresh: float = 0.5
    device: str = "auto"
    overrides: tuple[str, ...] = ()
    nms: str = "box"
    contained: float | None = None

    def __post_init__(self) -> None:
        try:
            check_tiling(self.tile, self.overlap, self.merge)
        except ValueError as exc:
            raise InputError(f"tile {self.tile}, overlap {self.overlap}: {exc}") from exc
        try:
            check_suppression(self.nms, self.contained)
        except ValueError as exc:
            raise InputError(f"prediction options: {exc}") from exc


def _paste_one(prob: torch.Tensor, box: torch.Tensor, height: int, width: int) -> tuple[int, int, np.ndarray]:
    """Paste one RoI map [1, M, M] into its own box-sized canvas; returns (y0, x0, map)."""
    x0 = max(int(np.floor(float(box[0]))) - 1, 0)
    y0 = max(int(np.floor(float(box[1]))) - 1, 0)
    x1 = min(int(np.ceil(float(box[2]))) + 1, width)
    y1 = min(int(np.ceil(float(box[3]))) + 1, height)
    local = box - torch.tensor([x0, y0, x0, y0], dtype=box.dtype)
    canvas = paste_masks_in_image(prob[None], local[None], (max(y1 - y0, 1), max(x1 - x0, 1)))[0, 0]
    return y0, x0, canvas.numpy()


def largest_training_area(transform: torch.nn.Module) -> float:
    """Network pixels of the largest image the training resize can make: the longest training short side
    (``min_size_train``) times the long-side cap (``max_size``)."""
    return float(max(transform.min_size)) * float(transform.max_size)


@contextmanager
def limits_for_area(model: torch.nn.Module, height: float, width: float) -> Iterator[int]:
    """While open, ``model``'s test-time limits for a (height x width) network image: the proposal limits
    scaled by its area over the test size (``min_size_test``) squared, the detection limit by its area capped
    at ``largest_training_area``, both at least 1x; yields the detection limit in force."""
    rpn, heads = model.rpn, model.roi_heads
    saved = (rpn._pre_nms_top_n["testing"], rpn._post_nms_top_n["testing"], heads.detections_per_img)
    test_area = float(model.transform.test_size) ** 2
    factor = max(1.0, height * width / test_area)
    detections = round(saved[2] * max(1.0, min(height * width, largest_training_area(model.transform)) / test_area))
    rpn._pre_nms_top_n["testing"], rpn._post_nms_top_n["testing"] = round(saved[0] * factor), round(saved[1] * factor)
    heads.detections_per_img = detections
    try:
        yield detections
    finally:
        rpn._pre_nms_top_n["testing"], rpn._post_nms_top_n["testing"], heads.detections_per_img = saved


@dataclass(frozen=True)
class TilePlan:
    """What ``Predictor.plan`` decides for one image.

    Attributes:
        predictor: the one to run (a copy at a pyramid level's scale, or the planning one).
        pixels: what its tiles are cut from (the image, or a pyramid level of it).
        factor: full-resolution pixels per pixel of ``pixels`` (1.0 without a level): ``combine`` brings the
            instances back by it.
        scaling: the image's normalisation, shared by every tile.
        boxes: the tiles (y0, x0, y1, x1) in ``pixels``.
    """

    predictor: Predictor
    pixels: Any
    factor: float
    scaling: Scaling
    boxes: list[tuple[int, int, int, int]]

    @property
    def whole(self) -> bool:
        """One tile: the image is predicted at the model's own scale rule (``Predictor.predict_region``)."""
        return len(self.boxes) == 1

    @property
    def level_scale(self) -> float | None:
        """The scale a worker's predictor must use for these tiles: the level's, or None at full resolution."""
        return None if self.factor == 1.0 else self.predictor.scale


class Predictor:
    """Run a detection model image by image (see the module docstring).

    Args:
        model: a gains MaskRCNN in eval mode.
        categories: [{label, id, name}] of the model.
        tile: tile side in network pixels (``tile / scale`` image pixels); images whose scaled sides both
            fit are predicted whole. None: never tile.
        overlap: tile overlap in network pixels (should exceed the largest object's half size).
        scale: pixel scale applied to every image before the model; None = the model's ``test_scale``
            (every image at the training set's typical scale, whatever its size) or, for models without
            one, the old rule: whole images resized to ``min_size_test``, tiles at scale 1.
        score_thresh: instances below are dropped; mask_thresh: probability threshold of masks.
        normalisation: the model's input normalisation, fitted on the whole image (tiles share it).
        nms, contained: duplicate suppression of each tile's or image's instances (``PredictOptions``).

    Attributes:
        config: the checkpoint's config (None when built from a bare model); scale_note: one line on the scale
            used, for the user ("" when built from a bare model).
        confident: a region that reaches the detection limit with every score at or above this is logged
            (default ``score_thresh``; ``gains eval``, which keeps every detection for AP, sets its scoring one).

    Raises:
        ValueError: an overlap not smaller than the tile, an unknown ``merge`` or ``nms``, a bad ``contained``.
    """

    def __init__(self, model: torch.nn.Module, categories: list[dict[str, Any]], device: torch.device,
                 tile: int | None = 1024, overlap: int = 128, scale: float | None = None,
                 score_thresh: float = 0.5, mask_thresh: float = 0.5, normalisation: Normalisation = DEFAULT,
                 merge: str = "central", nms: str = "box", contained: float | None = None) -> None:
        check_tiling(tile, overlap, merge)
        check_suppression(nms, contained)
        self.merge, self.nms, self.contained = merge, nms, contained
        self.model, self.device = model.eval(), device
        self.categories = categories
        self.config: Config | None = None
        self.scale_note = ""
        self.label_to_category = {int(c["label"]): int(c["id"]) for c in categories}
        self.network_tile = (tile, overlap)
        self._set_scale(scale if scale is not None else getattr(model.transform, "test_scale", None))
        self.score_thresh, self.mask_thresh = score_thresh, mask_thresh
        self.confident = score_thresh
        self.normalisation = normalisation

    def _set_scale(self, scale: float | None) -> None:
        """Set the pixel scale and the tiling in image pixels it gives: tile and overlap are network pixels, so
        with a scale, tiles of tile / scale image pixels."""
        tile, overlap = self.network_tile
        self.scale = scale
        px = 1.0 / scale if scale is not None else 1.0
        self.tile = None if tile is None else max(round(tile * px), 2)
        self.overlap = min(round(overlap * px), self.tile - 1) if tile is not None else overlap

    def on_level(self, pixels: np.ndarray | Any) -> tuple[Predictor, Any, float]:
        """(predictor, pixels, factor) to predict ``pixels`` with: for a lazy plane with a pyramid
        (``gains.core.lazy``) and a scale below 1, the coarsest level that still has at least the pixels the
        model needs (``choose_level``) and a predictor at the scale left for it, its instances to be brought
        back to full resolution by ``factor`` (``gains.core.masks.upscale``); else (self, pixels, 1.0)."""
        if self.scale is None or self.scale >= 1 or len(getattr(pixels, "levels", ())) < 2:
            return self, pixels, 1.0
        from gains.core.lazy import choose_level

        level, scale = choose_level(pixels, self.scale)
        if level.downsample == 1.0:
            return self, pixels, 1.0
        other = copy.copy(self)
        other._set_scale(scale)
        return other, level, level.downsample

    @classmethod
    def from_checkpoint(cls, spec: str | Path, options: PredictOptions | None = None,
                        load: Loader = load_model) -> Predictor:
        """The predictor of a run folder, checkpoint file or shipped model name, set up by ``options``: the
        model on its device, its categories and config, its input normalisation, the scale (with its note
        for the user) and the score threshold. Every caller that predicts with a trained model starts here.

        ``options`` None: ``PredictOptions()``, as ``gains predict`` without options. ``load(spec, overrides,
        device) -> (model, config, categories)`` is ``load_model`` or one caching it (napari).

        Raises:
            InputError: an unknown device, a checkpoint ``load_model`` refuses, or a scale ``resolve_scale`` refuses.
        """
        options = options or PredictOptions()
        device = resolve_device(options.device)
        model, cfg, categories = load(spec, list(options.overrides), device)
        scale, note = resolve_scale(cfg.model, options.scale, options.object_size)
        thresh = options.score_thresh if options.score_thresh is not None else cfg.eval.score_thresh
        predictor = cls(model, categories, device, tile=options.tile, overlap=options.overlap, scale=scale,
                        score_thresh=thresh, mask_thresh=options.mask_thresh,
                        normalisation=Normalisation.of_model(cfg.model), merge=options.merge, nms=options.nms,
                        contained=options.contained)
        predictor.config, predictor.scale_note = cfg, note
        return predictor

    @torch.no_grad()
    def _run(self, pixels: np.ndarray, y_off: int, x_off: int, scale: float | None, scaling: Scaling
             ) -> list[Instance]:
        h, w = pixels.shape[:2]
        tr = self.model.transform
        saved = (tr.test_scale, tr.paste)
        if scale is not None:
            tr.test_scale = scale
        tr.paste = False
        try:
            with limits_for_area(self.model, *tr.output_size(h, w)) as cap, box_nms_for(self.model, self.nms) as iou:
                out = self.model([image_to_tensor(pixels, self.normalisation, scaling).to(self.device)])[0]
        finally:
            tr.test_scale, tr.paste = saved
        if len(out["scores"]) >= cap and float(out["scores"].min()) >= self.confident:  # confident ones cut off
            log.warning("an image region of %d x %d px reached the detection limit (%d): objects may be missing; "
                        "predict with a smaller --tile", h, w, cap)
        found = []
        keep = torch.where(out["scores"] >= self.score_thresh)[0]
        for k in keep.tolist():
            box = out["boxes"][k].cpu()
            y0, x0, prob = _paste_one(out["masks"][k].cpu(), box, h, w)
            crop = tight_crop(prob >= self.mask_thresh, y0 + y_off, x0 + x_off)
            if crop is None:
                continue
            ga = None
            if "ga_maps" in out:
                gy0, gx0, g = _paste_one(out["ga_maps"][k].cpu() - 1.0, box, h, w)
                gy, gx = crop.y0 - y_off - gy0, crop.x0 - x_off - gx0
                ga = (g[gy : gy + crop.mask.shape[0], gx : gx + crop.mask.shape[1]] + 1.0).astype(np.float32)
            found.append(Instance(self.label_to_category[int(out["labels"][k])], float(out["scores"][k]), crop, ga))
        return suppress(found, self.nms, iou, self.contained)

    def tiles(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """(y0, x0, y1, x1) tiles covering the image, the last ones flush with the border."""
        def starts(n: int) -> list[int]:
            if self.tile is None or n <= self.tile:
                return [0]
            step = self.tile - self.overlap
            s = [*range(0, n - self.tile, step), n - self.tile]
            return sorted(set(s))

        size = self.tile or max(height, width)
        return [(y, x, min(y + size, height), min(x + size, width)) for y in starts(height) for x in starts(width)]

    def plan(self, pixels: np.ndarray | Any) -> TilePlan:
        """How ``pixels`` are predicted: the pyramid level and predictor (``on_level``), the image's scaling
        (``Normalisation.fit``) and the tiles (``tiles``). ``predict`` follows it in one process, a Dask run
        task by task (``gains.distributed``).

        Raises:
            ValueError: pixels the normalisation refuses (non-finite values).
        """
        predictor, level, factor = self.on_level(pixels)
        return TilePlan(predictor, level, factor, predictor.normalisation.fit(level),
                        predictor.tiles(*level.shape[:2]))

    def predict(self, pixels: np.ndarray | Any, progress: Callable[[int, int], None] | None = None
                ) -> list[Instance]:
        """Instances of an (H, W) or (H, W, C) image, by descending score.

        ``pixels``: an np.ndarray, or a lazy plane of a large file (``gains.core.lazy.LazyPlane``: anything with
        ``shape`` and numpy-style slicing), read one tile at a time so memory follows the tile, not the image.
        ``progress(done, total)`` is called after each tile (once for a whole image).

        Raises:
            ValueError: pixels the normalisation refuses (non-finite values).
        """
        plan = self.plan(pixels)
        per_tile = []
        for k, (y0, x0, y1, x1) in enumerate(plan.boxes):
            region = np.asarray(plan.pixels[y0:y1, x0:x1])
            per_tile.append(((y0, x0, y1, x1), plan.predictor.predict_region(region, y0, x0, plan.scaling,
                                                                              plan.whole)))
            if progress is not None:
                progress(k + 1, len(plan.boxes))
        return plan.predictor.combine(per_tile, plan.factor, *pixels.shape[:2])

    def predict_region(self, region: np.ndarray, y0: int, x0: int, scaling: Scaling, whole: bool = False,
                       level_scale: float | None = None) -> list[Instance]:
        """Instances (in image coordinates) of one tile ``region`` of an image whose top-left corner is at
        (``y0``, ``x0``), normalised with the image's ``scaling``; ``whole``: the region is the whole image,
        predicted at the model's own scale rule (see ``scale``) rather than as a tile. ``predict`` is this for
        every tile of ``tiles`` then ``combine``; a Dask task runs one tile (``gains.distributed``).
        ``level_scale``: the scale of a pyramid level's predictor (``on_level``) for a tile of that level."""
        if level_scale is not None:
            return self._run(region, y0, x0, level_scale, scaling)
        return self._run(region, y0, x0, self.scale if whole else self.scale or 1.0, scaling)

    def combine(self, per_tile: list[tuple[tuple[int, int, int, int], list[Instance]]], factor: float = 1.0,
                height: int = 0, width: int = 0) -> list[Instance]:
        """One set of instances, by descending score, from every tile's of ``tiles`` (one tile: its own); the
        tiles' detections are merged by the ``merge`` rule (module docstring). ``factor`` > 1: the tiles were of
        a pyramid level (``on_level``); the instances are brought to the (``height``, ``width``) image."""
        if len(per_tile) == 1:
            found = sorted(per_tile[0][1], key=lambda i: -i.score)
        else:
            found = merge_tiles(per_tile) if self.merge == "union" else keep_central(per_tile)
        if factor == 1.0:
            return found
        return [i for i in (upscale(inst, factor, height, width) for inst in found) if i is not None]
