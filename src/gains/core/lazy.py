"""Large images read region by region: ``LazyPlane``, one 2-D plane of an OME-Zarr, a plain Zarr array or a
(pyramidal) TIFF, sliced like a numpy array and decoded only where it is sliced.

``gains.core.images.read_planes(path, choice, lazy=...)`` builds these after its header checks; this module only
knows the stored arrays:

- **OME-Zarr** (NGFF 0.4: the group's attributes hold ``"multiscales"``; 0.5: ``"ome": {"multiscales"}``): axes
  from the multiscale's ``"axes"`` names (``t``, ``c``, ``z``, ``y``, ``x``; other names become ``Q``), one level
  per ``"datasets"`` entry, its downsample from the entry's ``"scale"`` transformation.
- **Plain Zarr array** (a folder that is one array): no axis names, no pyramid.
- **TIFF**: the first series through tifffile's zarr store; pyramid levels from ``series.levels`` (sub-IFDs of
  OME-TIFF and tifffile pyramids), their downsample from the level shapes.

Every read goes through ``zarr`` array indexing, which decodes only the chunks (TIFF tiles or strips) a region
touches. A ``LazyPlane`` pickles as its path and selection (a few hundred bytes, never pixels) and reopens its file
on the first read after unpickling, so it can be sent to other processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gains.errors import InputError

ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")  # a folder holding one of these is a Zarr array or group
NGFF_AXES = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}  # OME-Zarr axis names -> gains axis letters
NGFF_TYPES = {"time": "T", "channel": "C"}  # axis types, for names outside NGFF_AXES
DROPPED = "-"  # axis letter of a stored length-1 axis that the plane indexes at 0


def is_zarr(path: str | Path) -> bool:
    """Whether ``path`` is a Zarr array or group folder (a ``.zarr`` suffix or a Zarr metadata file inside)."""
    path = Path(path)
    return path.is_dir() and (path.suffix.lower() == ".zarr" or any((path / m).is_file() for m in ZARR_MARKERS))


@dataclass(frozen=True)
class Level:
    """One resolution level of a stored image.

    Attributes:
        where: zarr: the array's path inside the folder (``""``: the folder is the array); TIFF: the pyramid level
            index as text (``"0"`` is full resolution).
        shape: the stored array's shape, one entry per stored axis.
        scale: the OME-Zarr ``scale`` transformation, one per stored axis (None: downsample from the shapes).
    """

    where: str
    shape: tuple[int, ...]
    scale: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Source:
    """A stored image: ``kind`` ``"zarr"`` or ``"tiff"``, the file's axis letters (None when it names none), the
    stored dtype and its levels, full resolution first."""

    path: str
    kind: str
    axes: str | None
    dtype: np.dtype
    levels: tuple[Level, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """Stored shape at full resolution."""
        return self.levels[0].shape


def _ngff_axis(axis: Any) -> str:
    name, kind = (axis.get("name", ""), axis.get("type", "")) if isinstance(axis, dict) else (str(axis), "")
    return NGFF_AXES.get(str(name).lower()) or NGFF_TYPES.get(str(kind).lower(), "Q")


def _scale(dataset: dict[str, Any]) -> tuple[float, ...] | None:
    for transform in dataset.get("coordinateTransformations", ()):
        if transform.get("type") == "scale" and "scale" in transform:
            return tuple(float(s) for s in transform["scale"])
    return None


def zarr_source(path: str | Path) -> Source:
    """The ``Source`` of a Zarr array folder or an OME-Zarr image group (metadata only; no pixel is read).

    Raises:
        InputError: a group without OME-Zarr ``multiscales`` metadata (a plate, a bare group), in one line.
        Exception: whatever zarr raises for a folder it cannot open (the caller names the file).
    """
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return Source(str(path), "zarr", None, np.dtype(node.dtype), (Level("", tuple(node.shape)),))
    attrs = node.attrs.asdict()
    multiscales = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
    if not multiscales:
        raise InputError(f"{path}: a Zarr group without OME-Zarr \"multiscales\" metadata; give the path of an "
                         "OME-Zarr image or of one Zarr array")
    image = multiscales[0]
    arrays = [(d, node[d["path"]]) for d in image.get("datasets", ())]
    if not arrays:
        raise InputError(f"{path}: OME-Zarr \"multiscales\" without \"datasets\"; nothing to read")
    levels = tuple(Level(d["path"], tuple(a.shape), _scale(d)) for d, a in arrays)
    axes = "".join(_ngff_axis(a) for a in image["axes"]) if "axes" in image else None
    return Source(str(path), "zarr", axes, np.dtype(arrays[0][1].dtype), levels)


def tiff_source(path: str | Path, series: Any) -> Source:
    """The ``Source`` of a TIFF's series (tifffile ``TiffPageSeries``): its axes, dtype and pyramid levels."""
    levels = tuple(Level(str(k), tuple(level.shape)) for k, level in enumerate(series.levels))
    return Source(str(path), "tiff", series.axes, np.dtype(series.dtype), levels)


def native_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype planes are given in: native byte order, float16 widened to float32, bool to uint8."""
    dtype = dtype.newbyteorder("=")
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(np.uint8) if dtype.kind == "b" else dtype


class LazyPlane:
    """One 2-D plane of a stored image, read region by region; duck-typed like the array ``read_planes`` returns.

    ``plane[y0:y1, x0:x1]`` (steps >= 1 allowed, e.g. ``plane[::8, ::8]``) returns a C-contiguous ``np.ndarray``
    equal to slicing the eagerly read plane the same way, decoding only the chunks it touches.

    Attributes:
        source: the stored image.
        axes: one letter per stored axis: ``Y``, ``X``, the channel axis (``C`` or ``S``), plane axes, or ``-``
            for a length-1 axis.
        take: per stored axis, the index the plane takes (Z/T picks, length-1 axes, one chosen channel), or
            None for the axes kept (Y, X, channels).
        channels: the channels kept, in order, when a channel axis is kept (None: all of them).
        label: the plane label ``read_planes`` gives (``""``, ``"z3_t0"``).
        level: index into ``source.levels`` (0: full resolution).
    """

    def __init__(self, source: Source, axes: str, take: tuple[int | None, ...],
                 channels: tuple[int, ...] | None = None, label: str = "", level: int = 0) -> None:
        self.source, self.axes, self.take, self.channels = source, axes, tuple(take), channels
        self.label, self.level = label, level
        self._y, self._x = axes.index("Y"), axes.index("X")
        kept = [i for i, t in enumerate(self.take) if t is None and i not in (self._y, self._x)]
        self._c = kept[0] if kept else None
        self._open: tuple[Any, Any] | None = None  # (zarr array, file handle to keep open), on first read

    @property
    def path(self) -> Path:
        """The file or Zarr folder."""
        return Path(self.source.path)

    @property
    def shape(self) -> tuple[int, ...]:
        """(H, W) or (H, W, C) of this level, as ``read_planes`` gives the plane."""
        stored = self.source.levels[self.level].shape
        if self._c is None:
            return stored[self._y], stored[self._x]
        return stored[self._y], stored[self._x], len(self.channels) if self.channels else stored[self._c]

    @property
    def dtype(self) -> np.dtype:
        """Pixel type of what reads return (native byte order; float16 -> float32, bool -> uint8)."""
        return native_dtype(self.source.dtype)

    @property
    def ndim(self) -> int:
        """2 or 3."""
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes the whole plane takes once read."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyPlane({self.source.path!r}, label={self.label!r}, level={self.level}, shape={self.shape})"

    def _at(self, level: int) -> LazyPlane:
        return self if level == self.level else LazyPlane(self.source, self.axes, self.take, self.channels,
                                                          self.label, level)

    @property
    def levels(self) -> list[LazyPlane]:
        """This plane at every pyramid level, full resolution first (``[self]`` without a pyramid). Levels that
        also shrink a plane or channel axis are left out."""
        full = self.source.levels[0].shape
        same = [k for k, lv in enumerate(self.source.levels)
                if all(n == full[i] for i, n in enumerate(lv.shape) if i not in (self._y, self._x))]
        return [self._at(k) for k in same]

    @property
    def downsample(self) -> float:
        """Full-resolution pixels per pixel of this level (1.0 at level 0): from the OME-Zarr scales where both
        levels have one, else from the shapes; the mean of Y and X."""
        full, here = self.source.levels[0], self.source.levels[self.level]
        if self.level == 0:
            return 1.0
        if full.scale is not None and here.scale is not None:
            return float(np.mean([here.scale[i] / full.scale[i] for i in (self._y, self._x)]))
        return float(np.mean([full.shape[i] / here.shape[i] for i in (self._y, self._x)]))

    def _array(self) -> Any:
        if self._open is None:
            import zarr

            where = self.source.levels[self.level].where
            if self.source.kind == "tiff":
                import tifffile

                tif = tifffile.TiffFile(self.source.path)
                self._open = zarr.open(tif.series[0].aszarr(level=int(where)), mode="r"), tif
            else:
                self._open = zarr.open_array(self.source.path, path=where, mode="r"), None
        return self._open[0]

    def close(self) -> None:
        """Close the file handle a read opened (the next read reopens it)."""
        if self._open is not None and self._open[1] is not None:
            self._open[1].close()
        self._open = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": None}  # the path and selection; never pixels or handles

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __getitem__(self, key: slice | tuple[slice, ...]) -> np.ndarray:
        """Pixels of a region: ``key`` a slice over Y or a (Y, X) pair of slices, steps >= 1.

        Returns:
            C-contiguous array (h, w) or (h, w, C) of ``self.dtype``.

        Raises:
            TypeError: a key other than slices; ValueError: a step below 1.
            InputError: the file cannot be read there (names it).
        """
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > 2 or not all(isinstance(k, slice) for k in key):
            raise TypeError(f"LazyPlane takes a slice or a (slice, slice) over Y, X, not {key!r}")
        bounds = [k.indices(n) for k, n in zip((*key, slice(None))[:2], self.shape[:2], strict=True)]
        if any(step < 1 for _, _, step in bounds):
            raise ValueError(f"LazyPlane slices need a step >= 1, not {key!r}")
        ys, xs = (slice(start, max(start, stop), step) for start, stop, step in bounds)
        stored: list[Any] = [slice(None) if t is None else t for t in self.take]
        stored[self._y], stored[self._x] = ys, xs
        if self._c is not None and self.channels is not None:
            stored[self._c] = list(self.channels)
        try:
            array = self._array()
            data = np.asarray(array.oindex[tuple(stored)] if self.channels is not None else array[tuple(stored)])
        except Exception as exc:
            raise InputError(f"{self.source.path}: unreadable image ({exc})") from exc
        kept = [i for i, t in enumerate(self.take) if t is None]
        order = [kept.index(self._y), kept.index(self._x)] + ([kept.index(self._c)] if self._c is not None else [])
        return np.ascontiguousarray(np.transpose(data, order), dtype=self.dtype)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The whole plane, decoded (as large as ``nbytes``): for small planes only; tile big ones by slicing."""
        data = self[:, :]
        return data if dtype is None else data.astype(dtype)


def choose_level(plane: LazyPlane, scale: float) -> tuple[LazyPlane, float]:
    """The pyramid level to read for a model scale, and the scale to apply to it.

    Args:
        plane: any level of the plane.
        scale: network pixels per full-resolution pixel (e.g. 0.5 for a model that wants half size).

    Returns:
        (level, scale * level.downsample): the coarsest level whose downsample ``d`` keeps ``scale * d <= 1``
        (+1e-6), so no level is upsampled; level 0 and ``scale`` when ``scale >= 1`` or there is no pyramid.
    """
    levels = plane.levels
    if scale >= 1 or len(levels) == 1:
        return levels[0], scale
    best = max((p for p in levels if scale * p.downsample <= 1 + 1e-6), key=lambda p: p.downsample)
    return best, scale * best.downsample
