"""The compact on-disk store of GA maps, its manifest, and the loader.

Layout of a store folder::

    manifest.json        variant, parameters, package version, sha256 of the annotations file,
                         precision, counts of sanitised maps, "complete": true once finished
    maps/<image_id>.npz  per image: ann_ids (n,), boxes (n, 4) [y0, x0, h, w], fills (n,) and
                         data = the concatenated crops of (map - fill), float16 or float32
    index.npz            ann_ids, image_ids, heights, widths of every stored map

Only the crop where a map differs from its fill (1.0, or NaN/0.0 for raw reference maps) is kept.
Precision: float16 stores ``map - 1`` with an absolute error below ``ga_factor * 2**-11`` (< 5e-4 for
ga_factor <= 1); float32 below ``ga_factor * 2**-24``. Every file is written to a temporary name and
renamed, so no half-written file is ever visible; an unfinished store lives in ``<store>.partial``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gains.errors import InputError
from gains.gamm.gamap import GaMap

FORMAT = 1
PRECISIONS = {"float16": np.float16, "float32": np.float32}


def encode_image_maps(ann_ids: list[int], maps: list[GaMap], precision: str) -> dict[str, np.ndarray]:
    """Pack one image's maps into the arrays of ``maps/<image_id>.npz``."""
    dtype = PRECISIONS[precision]
    boxes = np.zeros((len(maps), 4), dtype=np.int32)
    fills = np.zeros(len(maps), dtype=np.float32)
    chunks = []
    for j, m in enumerate(maps):
        m = m.trimmed()
        fills[j] = m.fill
        if m.values is not None:
            boxes[j] = (m.y0, m.x0, *m.values.shape)
            chunks.append((m.values - (0.0 if np.isnan(m.fill) else m.fill)).ravel())
    data = np.concatenate(chunks).astype(dtype) if chunks else np.zeros(0, dtype=dtype)
    return {"ann_ids": np.asarray(ann_ids, dtype=np.int64), "boxes": boxes, "fills": fills, "data": data}


def map_crop(arrays: dict[str, np.ndarray], j: int) -> tuple[int, int, np.ndarray | None, float]:
    """Map number ``j`` of an image's npz arrays as ``(y0, x0, values, fill)``: float32 ``values`` [h, w] at
    row ``y0``, column ``x0``, and ``fill`` everywhere else (``values`` None: the map is ``fill`` everywhere)."""
    fill = float(arrays["fills"][j])
    boxes = arrays["boxes"]
    y0, x0, h, w = (int(v) for v in boxes[j])
    if not (h and w):
        return y0, x0, None, fill
    start = int((boxes[:j, 2].astype(np.int64) * boxes[:j, 3]).sum())
    crop = arrays["data"][start : start + h * w].astype(np.float32).reshape(h, w)  # astype copies
    if not np.isnan(fill):
        crop += np.float32(fill)
    return y0, x0, crop, fill


def decode_map(arrays: dict[str, np.ndarray], j: int, height: int, width: int,
               out: np.ndarray | None = None) -> np.ndarray:
    """The full-size float32 map number ``j`` of an image's npz arrays, written into ``out`` (float32
    [height, width], e.g. one slice of a preallocated stack) when given."""
    y0, x0, values, fill = map_crop(arrays, j)
    if out is None:
        out = np.empty((height, width), dtype=np.float32)
    out.fill(fill)
    if values is not None:
        out[y0 : y0 + values.shape[0], x0 : x0 + values.shape[1]] = values
    return out


@dataclass(frozen=True)
class StoreKey:
    """What a store's maps depend on; a store is reused only when all of it matches."""

    params: dict[str, Any]
    annotations_sha256: str
    raw: bool
    precision: str
    version: str

    def mismatch(self, manifest: dict[str, Any]) -> str | None:
        """Why ``manifest`` does not match this key (None when it does)."""
        for name in ("params", "annotations_sha256", "raw", "precision", "version"):
            if manifest.get(name) != getattr(self, name):
                return f"{name} differs (store: {manifest.get(name)!r}, wanted: {getattr(self, name)!r})"
        return None


class GammStore:
    """Read access to a finished store: ``store.load(ann_id)`` -> float32 (H, W) map."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest_file = self.path / "manifest.json"
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{manifest_file}: not a GA-map store ({exc})") from exc
        if self.manifest.get("format") != FORMAT or not self.manifest.get("complete"):
            raise InputError(f"{manifest_file}: unfinished or unknown store format")
        index = np.load(self.path / "index.npz")
        self._where = {int(a): (int(i), int(h), int(w)) for a, i, h, w in
                       zip(index["ann_ids"], index["image_ids"], index["heights"], index["widths"], strict=True)}
        self._cache: tuple[int, dict[str, np.ndarray]] | None = None

    def check(self, key: StoreKey) -> None:
        """Raise InputError when the store was made from other annotations, parameters or version."""
        why = key.mismatch(self.manifest)
        if why:
            raise InputError(f"{self.path}: stale GA-map store: {why}")

    def __contains__(self, ann_id: int) -> bool:
        return int(ann_id) in self._where

    def __len__(self) -> int:
        return len(self._where)

    def image_arrays(self, image_id: int) -> dict[str, np.ndarray]:
        """The raw npz arrays of one image (cached for consecutive look-ups)."""
        if self._cache is None or self._cache[0] != image_id:
            with np.load(self.path / "maps" / f"{image_id}.npz") as z:
                self._cache = (image_id, {k: z[k] for k in z.files})
        return self._cache[1]

    def _locate(self, ann_id: int) -> tuple[dict[str, np.ndarray], int, int, int]:
        """(the npz arrays holding the map of ``ann_id``, its index there, frame height, frame width)."""
        if int(ann_id) not in self._where:
            raise KeyError(f"annotation {ann_id} has no map in {self.path}")
        image_id, height, width = self._where[int(ann_id)]
        arrays = self.image_arrays(image_id)
        return arrays, int(np.flatnonzero(arrays["ann_ids"] == int(ann_id))[0]), height, width

    def load(self, ann_id: int) -> np.ndarray:
        """Full-size float32 (H, W) map of one annotation."""
        arrays, j, height, width = self._locate(ann_id)
        return decode_map(arrays, j, height, width)

    def crop(self, ann_id: int) -> tuple[int, int, np.ndarray | None, float]:
        """The map of one annotation as ``(y0, x0, values, fill)`` (see ``map_crop``)."""
        arrays, j, _, _ = self._locate(ann_id)
        return map_crop(arrays, j)
