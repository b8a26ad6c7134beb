"""Figures: instance outlines and GA maps over images. Imported by the CLI and reports only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from gains.atomic import atomic_write
from gains.core.masks import MaskCrop, tight_crop
from gains.intensity import Normalisation, to_display


def instance_colours(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) distinct-looking RGB colours in [0, 1], deterministic for a seed."""
    import matplotlib

    rng = np.random.default_rng(seed)
    base = matplotlib.colormaps["tab20"](np.arange(20))[:, :3]
    return base[rng.permutation(max(n, 1)) % 20][:n] if n > 20 else base[:n]


def outline_overlay(image: np.ndarray, masks: Sequence[np.ndarray | MaskCrop | None], width: int = 1,
                    normalisation: Normalisation | None = None) -> np.ndarray:
    """(H, W, 3) float image in [0, 1] (``to_display`` with ``normalisation``) with each instance outlined in
    its own colour, as ``paint_outlines`` paints them."""
    out = to_display(image, normalisation)
    if np.may_share_memory(out, image):  # painted in place: never into the caller's pixels
        out = out.copy()
    return paint_outlines(out, masks, width)


def paint_outlines(rgb: np.ndarray, masks: Sequence[np.ndarray | MaskCrop | None], width: int = 1) -> np.ndarray:
    """Paint each instance's outline into ``rgb`` in place, in order (overlaps keep both, later on top), each in
    its own colour (``instance_colours``); returns ``rgb``.

    Args:
        rgb: (H, W, 3) float in [0, 1], or uint8 (colours as ``round(255 * colour)``).
        masks: per instance an (H, W) bool mask, a ``MaskCrop`` in image coordinates (drawn where it lies, at a
            cost that follows the crop, not the image), or None (nothing to draw; it keeps its colour).
        width: outline thickness in pixels (inside the mask).
    """
    colours = instance_colours(len(masks))
    if rgb.dtype == np.uint8:
        colours = (colours * 255).round().astype(np.uint8)
    for mask, colour in zip(masks, colours, strict=True):
        crop = mask if mask is None or isinstance(mask, MaskCrop) else tight_crop(np.asarray(mask, dtype=bool))
        if crop is not None:
            rgb[crop.y0 : crop.y1, crop.x0 : crop.x1][outline(crop.mask, width)] = colour
    return rgb


def outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The pixels of a bool mask within ``width`` (4-connected steps) of its edge: ``mask`` less its erosion,
    with everything outside the array empty, so a tight crop's outline is the full mask's outline there."""
    return mask & ~ndimage.binary_erosion(mask, iterations=width, border_value=0)


def ga_composite(maps: Sequence[np.ndarray], ga_factor: float) -> np.ndarray:
    """Per-pixel maximum over instances of ``(map - 1) / ga_factor``: (H, W) in [0, 1]."""
    if not maps:
        raise ValueError("no GA map to show")
    stack = np.stack([np.nan_to_num(m, nan=1.0) for m in maps])
    return np.clip((stack.max(axis=0) - 1.0) / ga_factor, 0.0, 1.0)


def save_ga_preview(
    path: str | Path, image: np.ndarray, masks: Sequence[np.ndarray], maps: Sequence[np.ndarray],
    ga_factor: float, title: str = "",
) -> None:
    """Write a 3-panel PNG: the image, the GA maps (max over instances), outlines over GA overlay.

    Args:
        image: (H, W) or (H, W, C) pixels.
        masks: per-instance (H, W) bool masks.
        maps: per-instance (H, W) GA maps in [1, 1 + ga_factor].
    """
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    comp = ga_composite(maps, ga_factor) if maps else np.zeros(image.shape[:2])
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.4), constrained_layout=True)
    axes[0].imshow(to_display(image))
    axes[0].set_title("image")
    shown = axes[1].imshow(comp * ga_factor + 1.0, cmap="inferno", vmin=1.0, vmax=1.0 + ga_factor)
    axes[1].set_title("GA maps (max over instances)")
    fig.colorbar(shown, ax=axes[1], fraction=0.046)
    axes[2].imshow(outline_overlay(image, masks))
    axes[2].imshow(comp, cmap="inferno", alpha=np.where(comp > 0.02, 0.65, 0.0), vmin=0, vmax=1)
    axes[2].set_title(f"{len(masks)} instances, GA overlay")
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def gamm_previews(
    annotations: str | Path, image_dir: str | Path, load_map, ga_factor: float, k: int, out_dir: str | Path
) -> list[Path]:
    """PNG previews (see ``save_ga_preview``) of the first ``k`` images of a COCO file.

    Args:
        load_map: callable ann_id -> (H, W) GA map (e.g. ``GammStore(path).load``).

    Returns:
        The written paths, ``<out_dir>/<image_id>.png``.
    """
    from gains.core.coco import load_coco, read_coco_image
    from gains.gamm.prepare import prepare_image

    coco = load_coco(annotations)
    written = []
    for image in coco.images[: max(k, 0)]:
        height, width, instances, _ = prepare_image(coco, image, Path(image_dir), skip_invalid=True)
        pixels = read_coco_image(coco, image, Path(image_dir))
        masks = [inst.crop.to_dense(height, width) for inst in instances]
        maps = [load_map(inst.ann_id) for inst in instances]
        path = Path(out_dir) / f"{image.id}.png"
        save_ga_preview(path, pixels, masks, maps, ga_factor, title=image.file_name)
        written.append(path)
    return written
