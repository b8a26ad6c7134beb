"""What every writer takes: one image's instances (:class:`ImageResult`), predicted or ground truth.

``gains predict`` builds one per predicted image (plane) and ``gains export`` one per image of a dataset; each
format's ``write(result, out_dir, stem)`` reads what it needs from it. Instances stay tight mask crops in image
coordinates (:class:`gains.core.masks.Instance`), never full-size arrays.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gains.core.masks import Instance
from gains.formats.records import Record, records_from_instances
from gains.intensity import Normalisation


class Pixels(Protocol):
    """An image's pixels, (H, W) or (H, W, C), read on demand: an ``np.ndarray``, a zarr array opened read-only or
    a lazy plane of a large file. Numpy-style 2-D slicing (``p[y0:y1, x0:x1]``, ``p[::s, ::s]``) returns an
    ``np.ndarray``; writers read only the windows they need through it."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype: ...

    @property
    def ndim(self) -> int: ...

    def __getitem__(self, key: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class ImageResult:
    """One image's instances and what the formats need to know about the image.

    Attributes:
        instances: predictions by decreasing score, or ground truth in file order.
        categories: COCO categories ``[{id, name}, ...]``; colours follow their order.
        height, width: the image's size in pixels.
        image_id: its id in ``results.json`` / ``images.json`` (predictions: 1, 2, ... over the run).
        file_name: the image as outputs name it (``images.json``'s ``file_name``; a dataset's ``file_name``).
        file: the image file on disk (a dataset layout copies it), or None.
        plane: the label of the plane of a multi-plane file it is (e.g. ``z3_t0``), "" for a 2-D image; names only.
        z, t: the plane's 0-based Z and T indices in ``file``; None where the file has no such axis (length-1 axes
            dropped, as ``gains.core.images`` reads files). ImageJ ROIs and QuPath GeoJSON put objects on it.
        pixels: the image, (H, W) or (H, W, C), where a format draws or measures it (overlay, csv), else None:
            an array or a lazy :class:`Pixels` (whole slides), read a window at a time.
        normalisation: the model's intensity normalisation (the overlay shows the image with it); None: the
            image stretched from its minimum to its maximum.
        ids: instance numbers, one per instance; None: 1, 2, ... in order (a prediction's value in its label
            image). Ground truth gives its annotation ids.
        truth: ground truth (annotations, no scores, written as a dataset would hold them), not predictions.
    """

    instances: Sequence[Instance]
    categories: Sequence[dict[str, Any]]
    height: int
    width: int
    image_id: int = 1
    file_name: str = ""
    file: Path | None = None
    plane: str = ""
    z: int | None = None
    t: int | None = None
    pixels: np.ndarray | Pixels | None = None
    normalisation: Normalisation | None = None
    ids: Sequence[int] | None = None
    truth: bool = False
    _records: list[Record] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def numbers(self) -> list[int]:
        """Each instance's number: ``ids``, or 1, 2, ... in order."""
        return list(self.ids) if self.ids is not None else list(range(1, len(self.instances) + 1))

    @property
    def records(self) -> list[Record]:
        """The instances as outline records (:mod:`gains.formats.records`): built, and their polygons traced,
        once, however many formats read them. Ground truth has no scores."""
        if not self._records and self.instances:
            self._records.extend(records_from_instances(self.instances, self.categories, self.ids,
                                                        scored=not self.truth))
        return self._records

    @property
    def plane_keys(self) -> dict[str, int]:
        """The plane's COCO image keys, ``{"z": Z, "t": T}`` (only the axes the file has; ``{}`` for a 2-D image):
        what ``gains.core.planes.dataset_plane`` reads back to pick this plane of ``file`` again."""
        return {key: value for key, value in (("z", self.z), ("t", self.t)) if value is not None}

    def copy_image(self, folder: Path) -> Path:
        """Copy the image file into ``folder`` (made if missing) under its own name; returns the copy.

        Raises:
            ValueError: the result has no image file.
        """
        if self.file is None:
            raise ValueError(f"{self.file_name or 'image'}: no image file to copy")
        dest = folder / Path(self.file_name or self.file.name).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.file, dest)
        return dest
