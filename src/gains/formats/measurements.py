"""Per-object measurements as CSV: ``<stem>_objects.csv`` per image and ``summary.csv`` for the run.

``<stem>_objects.csv`` has one row per instance, in the instances' order, with the columns

- ``id`` (the instance's number: its value in the label image, the annotation id for ground truth), ``image``
  (the file as ``images.json`` names it), ``plane`` (e.g. ``z3_t0``; empty for a 2-D image), ``category_id``,
  ``category``, ``score`` (empty for ground truth);
- scikit-image ``regionprops`` of the instance's mask crop, in image pixels: ``area`` (pixel count),
  ``centroid_y``, ``centroid_x``, ``bbox_y0``, ``bbox_x0``, ``bbox_y1``, ``bbox_x1`` (half-open: the last row
  is ``bbox_y1 - 1``), ``perimeter`` (skimage's 4-connected boundary estimate), ``eccentricity``, ``solidity``,
  ``major_axis_length``, ``minor_axis_length`` (of the ellipse with the same second moments) and
  ``orientation`` (radians in [-pi/2, pi/2], from the row axis to the major axis, skimage's convention);
- where the image's pixels are given (``gains predict``; not ``gains export``), ``mean_intensity_c<k>`` and
  ``max_intensity_c<k>`` for every channel k of the raw pixels (not normalised; a grey image has ``c0`` only);
- ``overlaps``: the ids of the instances sharing at least one pixel with it, and ``touches``: those sharing
  none but 8-adjacent to it (a pixel of each within one row and one column of each other, diagonals
  included), both ``;``-joined in increasing order.

``summary.csv`` has one row per image: ``image``, ``plane``, ``height``, ``width``, ``instances``,
``n_<category>`` for every category of the model or dataset, ``overlapping_pairs``, ``touching_pairs``
and ``mean_area`` (empty without instances).

The same table (:func:`measure`) is the napari layers' ``features``. Pairs are found by a vectorised box
sweep and then tested on the pixels of the two crops' common box, so thousands of instances take
seconds; no full-size array is made per instance.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from skimage.measure import regionprops

from gains.atomic import atomic_write
from gains.core.masks import Instance, MaskCrop
from gains.core.pairs import contacts
from gains.formats.records import category_table
from gains.formats.result import ImageResult, Pixels

COMMANDS = ("predict", "export")
HELP = "per-object measurements <stem>_objects.csv + summary.csv"
SHAPE = ("area", "centroid_y", "centroid_x", "bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1", "perimeter",
         "eccentricity", "solidity", "major_axis_length", "minor_axis_length", "orientation")
Table = dict[str, Any]  # column name -> numpy array (numbers) or list[str] (text), one entry per instance
Part = dict[str, Any]  # one image's summary row before its category columns are named
READ_BLOCK = 1024  # pixels are read for the crops whose corner lies in one block of this side at a time


def _neighbours(pairs: list[tuple[int, int]], ids: Sequence[int]) -> list[str]:
    """Per instance, the ``;``-joined increasing ids of its partners in ``pairs``."""
    partners: list[list[int]] = [[] for _ in ids]
    for i, j in pairs:
        partners[i].append(ids[j])
        partners[j].append(ids[i])
    return [";".join(str(p) for p in sorted(found)) for found in partners]


def _shape_row(crop: MaskCrop, window: np.ndarray | None) -> tuple[list[float], np.ndarray, np.ndarray]:
    """regionprops of one crop: the ``SHAPE`` values in image pixels, and per-channel mean and max intensity
    of ``window`` (the pixels under the crop's box; empty without it)."""
    (r,) = regionprops(crop.mask.astype(np.uint8), intensity_image=window)
    cy, cx = r.centroid
    by0, bx0, by1, bx1 = r.bbox
    shape = [float(r.area), cy + crop.y0, cx + crop.x0, by0 + crop.y0, bx0 + crop.x0, by1 + crop.y0,
             bx1 + crop.x0, r.perimeter, r.eccentricity, r.solidity, r.axis_major_length, r.axis_minor_length,
             r.orientation]
    if window is None:
        return shape, np.empty(0), np.empty(0)
    return shape, np.atleast_1d(r.intensity_mean), np.atleast_1d(r.intensity_max)


def _shape_rows(crops: Sequence[MaskCrop], pixels: Pixels | None) -> list[tuple[list[float], np.ndarray, np.ndarray]]:
    """``_shape_row`` of every crop, in order. The pixels are read a region at a time: the box of the crops whose
    corner falls in one ``READ_BLOCK`` x ``READ_BLOCK`` block, so a lazy image is read about once, never whole."""
    if pixels is None:
        return [_shape_row(c, None) for c in crops]
    rows: list[tuple[list[float], np.ndarray, np.ndarray]] = [([], np.empty(0), np.empty(0))] * len(crops)
    blocks: dict[tuple[int, int], list[int]] = {}
    for k, c in enumerate(crops):
        blocks.setdefault((c.y0 // READ_BLOCK, c.x0 // READ_BLOCK), []).append(k)
    for members in blocks.values():
        y0, x0 = min(crops[k].y0 for k in members), min(crops[k].x0 for k in members)
        region = np.asarray(pixels[y0 : max(crops[k].y1 for k in members), x0 : max(crops[k].x1 for k in members)])
        for k in members:
            c = crops[k]
            rows[k] = _shape_row(c, region[c.y0 - y0 : c.y1 - y0, c.x0 - x0 : c.x1 - x0])
    return rows


def measure(instances: Sequence[Instance], categories: Sequence[dict[str, Any]], ids: Sequence[int] | None = None,
            pixels: Pixels | None = None, scored: bool = True) -> Table:
    """The measurement table of one image's instances (module docstring), without ``image`` and ``plane``.

    Args:
        instances: the image's instances; masks are tight crops in image pixels.
        categories: COCO categories ``[{id, name}, ...]``; an id missing from them is named ``category<id>``.
        ids: each instance's number; default 1, 2, ... in order.
        pixels: the raw image, (H, W) or (H, W, C), for the intensity columns; None: no intensity columns. An
            array or a lazy plane (``gains.formats.result.Pixels``): only each crop's window is read.
        scored: a ``score`` column (predictions); False for ground truth.

    Raises:
        ValueError: an instance reaches beyond ``pixels``.

    Returns:
        ``{column: values}`` in column order: ``id``, ``category_id``, ``category``, ``score`` (when scored),
        the ``SHAPE`` columns, the intensity columns, ``overlaps``, ``touches``. Numbers are int64 (``id``,
        ``category_id``, ``area``, the bbox) or float64 numpy arrays, text columns lists of str.
    """
    if pixels is not None and any(i.mask.y1 > pixels.shape[0] or i.mask.x1 > pixels.shape[1] for i in instances):
        raise ValueError(f"instances reach beyond the {pixels.shape[0]} x {pixels.shape[1]} pixels measured")
    numbers = list(ids) if ids is not None else list(range(1, len(instances) + 1))
    names = category_table(categories)
    table: Table = {
        "id": np.array(numbers, dtype=np.int64),
        "category_id": np.array([int(i.category_id) for i in instances], dtype=np.int64),
        "category": [names.get(int(i.category_id), (f"category{i.category_id}",))[0] for i in instances],
    }
    if scored:
        table["score"] = np.array([float(i.score) for i in instances], dtype=np.float64)
    rows = _shape_rows([i.mask for i in instances], pixels)
    shape = np.array([s for s, _, _ in rows], dtype=np.float64).reshape(-1, len(SHAPE))
    for k, column in enumerate(SHAPE):
        integer = column == "area" or column.startswith("bbox_")
        table[column] = shape[:, k].astype(np.int64) if integer else shape[:, k]
    if pixels is not None:
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        means = np.array([m for _, m, _ in rows], dtype=np.float64).reshape(-1, channels)
        maxes = np.array([m for _, _, m in rows], dtype=np.promote_types(pixels.dtype, np.int64))
        maxes = maxes.reshape(-1, channels)  # integer pixels keep integer maxima
        for c in range(channels):
            table[f"mean_intensity_c{c}"] = means[:, c]
            table[f"max_intensity_c{c}"] = maxes[:, c]
    overlapping, touching = contacts([i.mask for i in instances])
    table["overlaps"] = _neighbours(overlapping, numbers)
    table["touches"] = _neighbours(touching, numbers)
    return table


def _cell(value: Any) -> Any:
    """A CSV cell: numpy scalars as Python numbers (floats in full precision)."""
    return value.item() if isinstance(value, np.generic) else value


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    atomic_write(path, lambda fh: fh.write(buffer.getvalue().encode()))
    return path


def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>_objects.csv``: one row per instance (module docstring); ``score`` is empty for ground truth."""
    n = len(result.instances)
    table = measure(result.instances, result.categories, result.ids, result.pixels, scored=not result.truth)
    front = {"id": table.pop("id"), "image": [result.file_name] * n, "plane": [result.plane] * n,
             "category_id": table.pop("category_id"), "category": table.pop("category"),
             "score": table.pop("score", [""] * n)}
    columns = {**front, **table}
    rows = [list(row) for row in zip(*columns.values(), strict=True)]
    return [_write_csv(out_dir / f"{stem}_objects.csv", list(columns), rows)]


def collect(result: ImageResult) -> Part:
    """The image's ``summary.csv`` row, counts by category id (plain data: it travels between processes)."""
    crops = [i.mask for i in result.instances]
    overlapping, touching = contacts(crops)
    counts: dict[int, int] = {}
    for inst in result.instances:
        counts[int(inst.category_id)] = counts.get(int(inst.category_id), 0) + 1
    return {"image": result.file_name, "plane": result.plane, "height": result.height, "width": result.width,
            "instances": len(crops), "counts": counts, "overlapping_pairs": len(overlapping),
            "touching_pairs": len(touching),
            "mean_area": float(np.mean([c.area for c in crops])) if crops else ""}


def finish(out_dir: Path, parts: list[Part], categories: list[dict[str, Any]]) -> list[Path]:
    """Write ``summary.csv``: one row per image of ``parts`` (image order), a count column per category
    (those of ``categories``, then any other id met, by id)."""
    names = category_table(categories)
    ids = list(names) + sorted({cid for p in parts for cid in p["counts"]} - set(names))
    labels = [f"n_{names.get(cid, (f'category{cid}',))[0]}" for cid in ids]
    header = ["image", "plane", "height", "width", "instances", *labels, "overlapping_pairs", "touching_pairs",
              "mean_area"]
    rows = [[p["image"], p["plane"], p["height"], p["width"], p["instances"],
             *[p["counts"].get(cid, 0) for cid in ids], p["overlapping_pairs"], p["touching_pairs"], p["mean_area"]]
            for p in parts]
    return [_write_csv(out_dir / "summary.csv", header, rows)]
