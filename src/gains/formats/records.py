"""What the Fiji and QuPath writers take: one record per instance, from predictions or from ground truth.

A record is an instance mask (tight crop, image coordinates) with an id, a category and, for
predictions, a score. Predictions and a dataset's annotations alike become records through
:attr:`gains.formats.result.ImageResult.records`, so each writer has one input type and overlapping
instances stay separate records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gains.core.masks import Instance, MaskCrop
from gains.formats.contours import Polygon, mask_polygons

# matplotlib's tab10, as 8-bit RGB: category k (in the order of the categories list) gets colour k % 10
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


@dataclass(frozen=True)
class Record:
    """One instance as the writers see it.

    Attributes:
        id: instance number: 1-based score rank for predictions (the value the instance has in the label
            TIFF), the annotation id for ground truth.
        category_id, category: COCO category id and name.
        mask: the instance's tight bool crop in image coordinates.
        score: the model's score; None for ground truth.
        colour: 8-bit RGB of the category.
    """

    id: int
    category_id: int
    category: str
    mask: MaskCrop
    score: float | None = None
    colour: tuple[int, int, int] = PALETTE[0]
    _polygons: list[Polygon] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def polygons(self) -> list[Polygon]:
        """The mask's pixel-edge polygons (:func:`gains.formats.contours.mask_polygons`), traced once."""
        if not self._polygons:
            self._polygons.extend(mask_polygons(self.mask))
        return self._polygons

    @property
    def area(self) -> int:
        """Pixel count of the mask."""
        return self.mask.area

    def label(self, id_width: int = 4) -> str:
        """``<id>_<category>_<score>`` (``<id>_<category>`` without a score): id zero-padded to ``id_width``
        digits so names sort in id order, category with characters other than letters, digits, ``.+-``
        replaced by ``-`` (safe in a zip entry name), score with three decimals."""
        name = f"{self.id:0{id_width}d}_{re.sub(r'[^0-9A-Za-z.+-]', '-', self.category)}"
        return name if self.score is None else f"{name}_{self.score:.3f}"


def category_table(categories: Sequence[dict[str, Any]]) -> dict[int, tuple[str, tuple[int, int, int]]]:
    """``{category id: (name, colour)}`` of COCO categories ``[{id, name}, ...]``, colours by list order."""
    return {int(c["id"]): (str(c.get("name", c["id"])), PALETTE[k % len(PALETTE)])
            for k, c in enumerate(categories)}


def _category(table: dict[int, tuple[str, tuple[int, int, int]]], cid: int) -> tuple[str, tuple[int, int, int]]:
    return table.get(cid, (f"category{cid}", PALETTE[len(table) % len(PALETTE)]))


def records_from_instances(instances: Iterable[Instance], categories: Sequence[dict[str, Any]],
                           ids: Sequence[int] | None = None, scored: bool = True) -> list[Record]:
    """Records of instances in the given order (predictions: by score).

    Args:
        instances: the image's instances.
        categories: COCO categories ``[{id, name}, ...]``; a category id missing from them is named
            ``category<id>``.
        ids: each instance's number; default 1, 2, ... (a prediction's score rank).
        scored: keep the instances' scores (predictions), or not (ground truth).
    """
    table = category_table(categories)
    out = []
    for k, inst in enumerate(instances):
        name, colour = _category(table, int(inst.category_id))
        number = int(ids[k]) if ids is not None else k + 1
        out.append(Record(number, int(inst.category_id), name, inst.mask, float(inst.score) if scored else None,
                          colour))
    return out


def check_records(records: Sequence[Record]) -> None:
    """Refuse what no writer can represent faithfully.

    Raises:
        ValueError: two records share an id, a mask is not a non-empty 2-D bool array, or it lies at
            negative image coordinates.
    """
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("two instances share an id; ROI names and feature ids would collide")
    for r in records:
        m = np.asarray(r.mask.mask)
        if m.ndim != 2 or m.dtype != bool or not m.any():
            raise ValueError(f"instance {r.id}: mask must be a non-empty 2-D bool array")
        if r.mask.y0 < 0 or r.mask.x0 < 0:
            raise ValueError(f"instance {r.id}: mask lies at negative image coordinates")
