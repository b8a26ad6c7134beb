"""The values of COCO annotations and results, checked before anything is allocated from them.

Every reader of a segmentation (GAMM, the training dataset, ``gains stats``, ``gains convert``, ``gains
score``) calls ``check_segmentation`` first; the rules live here only:

- **Polygons**: lists of JSON numbers (not strings, not booleans), finite, at most ``MARGIN`` (4) image
  sides outside the image: with ``L = MARGIN * max(height, width)``, ``-L <= x <= width + L`` and
  ``-L <= y <= height + L``. Farther points cannot be a real annotation, and pycocotools' rasteriser
  allocates in proportion to the polygon's length (a NaN becomes a huge integer there and asks for tens
  of gigabytes).
- **RLE**: ``size`` is ``[height, width]`` of the image; uncompressed ``counts`` are non-negative
  integers that add up to ``height * width``; compressed ``counts`` are a string (pycocotools checks it
  when it decodes).
- **Boxes** (``bbox``, xywh): four finite numbers, width and height >= 0, inside the same bound.
- **Ids**: integers that fit int64 (numpy and torch hold them as such).

Each check raises ``ValueError`` with a short reason; the caller adds the file and the annotation.
"""

from __future__ import annotations

import math
from typing import Any

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MARGIN = 4  # image sides a polygon or box may reach beyond the image border


def is_number(value: Any) -> bool:
    """Whether ``value`` is a JSON number (an int or a float; not a bool, not a string)."""
    return type(value) in (int, float)


def check_id(value: Any, key: str) -> int:
    """``value`` when it is an integer that fits int64.

    Raises:
        ValueError: another type, or out of the int64 range.
    """
    if type(value) is not int:
        raise ValueError(f"'{key}' must be an integer, got {value!r}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"'{key}' {value} does not fit a 64-bit integer")
    return value


def _bounds(height: int, width: int) -> tuple[float, float, float]:
    """(lowest coordinate, highest x, highest y) accepted for an image of (height, width)."""
    reach = MARGIN * max(height, width)
    return -reach, width + reach, height + reach


def _check_coordinates(values: list[Any], height: int, width: int, what: str) -> None:
    if not all(is_number(v) for v in values):
        bad = next(v for v in values if not is_number(v))
        raise ValueError(f"{what} coordinate {bad!r} is not a number")
    low, high_x, high_y = _bounds(height, width)
    for k, v in enumerate(values):
        if not math.isfinite(v):
            raise ValueError(f"non-finite {what} coordinate {v!r}")
        if not low <= v <= (high_x if k % 2 == 0 else high_y):
            raise ValueError(f"{what} coordinate {v!r} lies more than {MARGIN * max(height, width)} px outside the "
                             f"{height}x{width} image")


def check_polygons(polygons: Any, height: int, width: int) -> None:
    """A COCO polygon list ``[[x0, y0, x1, y1, ...], ...]`` for a (height, width) image (module rules).

    Raises:
        ValueError: no polygon, a malformed one, or a coordinate that is not a finite number within bounds.
    """
    if not isinstance(polygons, list) or not polygons:
        raise ValueError("segmentation has no polygon")
    for poly in polygons:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
            size = len(poly) if isinstance(poly, list) else type(poly).__name__
            raise ValueError(f"polygon needs an even number (>= 6) of coordinates, got {size}")
        _check_coordinates(poly, height, width, "polygon")


def check_rle(segmentation: dict[str, Any], height: int, width: int) -> None:
    """A COCO RLE ``{"size": [h, w], "counts": ...}`` for a (height, width) image (module rules).

    Raises:
        ValueError: missing keys, another size, or counts that are not a string or non-negative integers
            adding up to height * width.
    """
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if size is None or counts is None:
        raise ValueError("RLE segmentation needs 'size' and 'counts'")
    if not isinstance(size, list) or len(size) != 2 or not all(type(v) is int for v in size):
        raise ValueError(f"RLE size must be [height, width], got {size!r}")
    if size != [height, width]:
        raise ValueError(f"RLE size {size} differs from the image size [{height}, {width}]")
    if isinstance(counts, list):
        if not all(type(c) is int and c >= 0 for c in counts):
            bad = next(c for c in counts if not (type(c) is int and c >= 0))
            raise ValueError(f"uncompressed RLE counts must be non-negative integers, got {bad!r}")
        if sum(counts) != height * width:
            raise ValueError("uncompressed RLE counts do not add up to height * width")
    elif not isinstance(counts, str | bytes):
        raise ValueError("RLE 'counts' must be a string or a list of integers")


def check_segmentation(segmentation: Any, height: int, width: int) -> None:
    """Any COCO segmentation (polygons, RLE, uncompressed RLE) for a (height, width) image.

    Raises:
        ValueError: the first rule broken (module docstring); the caller adds file and annotation.
    """
    if isinstance(segmentation, dict):
        check_rle(segmentation, height, width)
    elif isinstance(segmentation, list):
        check_polygons(segmentation, height, width)
    else:
        raise ValueError(f"unsupported segmentation type {type(segmentation).__name__}")


def check_bbox(bbox: Any, height: int, width: int) -> tuple[float, float, float, float]:
    """An xywh ``bbox`` as floats, checked for a (height, width) image (module rules).

    Raises:
        ValueError: not four finite numbers, a negative side, or beyond the bound around the image.
    """
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(is_number(v) and math.isfinite(v) for v in bbox):
        raise ValueError(f"bbox must be four finite numbers [x, y, width, height], got {bbox!r}")
    x, y, w, h = bbox
    if w < 0 or h < 0:
        raise ValueError(f"bbox width and height must be >= 0, got {bbox!r}")
    _check_coordinates([x, y, x + w, y + h], height, width, "bbox")
    return float(x), float(y), float(w), float(h)
