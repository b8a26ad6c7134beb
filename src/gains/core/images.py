"""Image files in: the one reader of every TIFF/OME-TIFF/PNG/JPEG and OME-Zarr/Zarr folder, for prediction,
training, evaluation and figures.

``read_planes(path, choice)`` returns ``[Plane(label, pixels)]`` with pixels ``(H, W)`` or ``(H, W, C)``,
``C <= 3``, in the file's own dtype (float16 widened to float32, 1-bit to uint8), ready for
``gains.intensity`` (which maps 1 channel to grey x3 and 2 channels to (c0, c1, c0)).

- **Axes** come from tifffile's series axes, which read OME-XML, ImageJ and tifffile's own metadata; a
  plain file without them gets ``Q`` axes. One unknown leading axis of at most 4 is taken as channels
  (a channels-first array saved without metadata); any other unknown or unsupported axis is refused with
  a hint to pass ``axes`` (``--axes``). Length-1 axes are dropped.
- **Planes**: ``Z`` and ``T`` are chosen by ``choice.z`` / ``choice.t`` (an index, or ``None`` for every
  plane); a file with several planes gets labels such as ``z3_t0`` (only the axes it has).
- **Channels** (``C`` or TIFF samples ``S``) are moved last. ``choice.channels`` picks up to three of them in
  the order the model should see them; by default an alpha channel (RGBA, grey + alpha) is dropped and
  1-3 channels are kept; four or more without alpha must be chosen.
- **Refused** before decoding, each as one ``InputError`` line naming the file and what to pass: headers
  whose decoded size (times ``choice.scale`` squared for an upscale) exceeds ``choice.max_bytes``
  (decompression bombs, absurd scales), images under ``choice.min_side`` pixels on a side, complex or other
  non-numeric pixel types. Non-finite pixels are refused by ``gains.intensity``.
- **Zarr folders** (``is_image_path``): an OME-Zarr image (NGFF 0.4 / 0.5; axes from its metadata) or a plain
  Zarr array (2-D, or with ``choice.axes``) pass the same checks.
- **Lazy planes** (``read_planes(..., lazy=)``): ``False`` decodes into numpy; ``None`` reads Zarr folders and
  TIFFs over ``LAZY_BYTES`` decoded as ``gains.core.lazy.LazyPlane`` (regions decoded on slicing, pyramid levels
  at hand); ``True`` does so for every TIFF and Zarr. PNG/JPEG are always decoded. The ``max_bytes`` refusal
  bounds what is decoded into memory, so it is skipped for planes read lazily.

**A dataset image is one plane.** ``read_image`` and ``image_size`` (training, ``gains eval``, the report, the
converters, mask and label files) read a file with the ``PlaneChoice`` of its COCO image entry's optional keys
``"z"``, ``"t"``, ``"channels"``, ``"axes"`` (``dataset_plane``; meant as ``--z`` ... to ``gains predict``).
With length-1 axes dropped and channels last the file must give exactly one plane: a channels-first
``(C, Y, X)`` or ``(1, C, Y, X)`` TIFF needs no key, a z-stack names its plane (``"z": 3``) or is refused in
one line naming the file. A plane index on a file without that axis may only be 0. Any size is accepted.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gains.core.lazy import DROPPED, LazyPlane, Source, is_zarr, native_dtype, tiff_source, zarr_source
from gains.core.planes import DATASET_PLANE, PlaneChoice, flag
from gains.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")  # the files a folder of images is scanned for
TIFF_SUFFIXES = IMAGE_SUFFIXES[3:]  # read with tifffile; every other file with Pillow
PLANE_AXES = "ZT"  # iterated (or chosen) plane axes, in label order
CHANNEL_AXES = "CS"
UNKNOWN_AXES = "QI"  # tifffile's letters for axes without metadata
MAX_CHANNELS_FIRST = 4  # an unknown leading axis up to this length is taken as channels
LAZY_BYTES = 512 << 20  # lazy=None: a TIFF whose series decodes to more than this is read region by region


@dataclass(frozen=True)
class Plane:
    """One 2-D image of a file: ``label`` ("" for a plain 2-D file, else e.g. ``"z3_t0"``), pixels (H, W[, C]):
    an array, or a ``LazyPlane`` sliced region by region (``read_planes`` with ``lazy``)."""

    label: str
    pixels: np.ndarray | LazyPlane


@dataclass(frozen=True)
class _Header:
    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    alpha: bool  # the last channel is alpha
    stored: str = ""  # one letter per stored axis: its letter in ``axes``, or DROPPED for a length-1 axis


def _size_text(size: float) -> str:
    return f"{size / (1 << 30):.1f} GiB" if size >= 1 << 30 else f"{size / (1 << 20):.1f} MiB"


def _decoded_bytes(header: _Header) -> float:
    """Bytes of the whole series once decoded."""
    return float(np.prod(header.shape, dtype=np.float64) * header.dtype.itemsize)


def _refuse_size(path: Path, header: _Header, choice: PlaneChoice) -> None:
    """Refuse a header whose decoded size, times ``choice.scale`` squared when it upscales, is over the limit."""
    size = _decoded_bytes(header)
    dims = " x ".join(f"{n:,}" for n in header.shape)
    limit = f"{choice.max_bytes / (1 << 30):.3g} GiB limit"
    if size > choice.max_bytes:
        raise InputError(f"{path}: header promises {dims} {header.dtype} ({_size_text(size)} decoded), over the "
                         f"{limit}; crop it, or pass --max-input-gib if you mean it")
    scaled = size * max(choice.scale, 1.0) ** 2
    if scaled > choice.max_bytes:
        raise InputError(f"{path}: {dims} {header.dtype} at --scale {choice.scale:.4g} is {_size_text(scaled)} "
                         f"of pixels, over the {limit}; pass a smaller --scale or a larger --object-size, or "
                         "--max-input-gib if you mean it")


def _axes_hint(ndim: int) -> str:
    return "ZYX, TYX, CYX or YXC" if ndim == 3 else "TZCYX"[-ndim:] if 2 <= ndim <= 5 else "TZCYX"


def _final_axes(path: Path, axes: str, shape: tuple[int, ...],
                choice: PlaneChoice) -> tuple[str, tuple[int, ...], str]:
    """Axes (user's, or the file's with an unknown leading channel axis resolved) and shape, length-1 axes dropped;
    and the stored axes (``_Header.stored``)."""
    if choice.axes is not None:
        user = choice.axes.upper()
        if len(user) != len(shape) or len(set(user)) != len(user) or not set(user) <= set("YX" + PLANE_AXES + "C"):
            raise InputError(f"{path}: {flag(choice, 'axes')} {choice.axes!r} does not fit shape {shape}; give one "
                             f"distinct letter of Z, T, C, Y, X per axis, e.g. {flag(choice, 'axes')} "
                             f"{_axes_hint(len(shape))}")
        axes = user
    kept = [(a, n) for a, n in zip(axes, shape, strict=True) if n > 1 or a in "YX"]
    stored = [a if n > 1 or a in "YX" else DROPPED for a, n in zip(axes, shape, strict=True)]
    axes, shape = "".join(a for a, _ in kept), tuple(n for _, n in kept)
    unknown = [a for a in axes if a not in "YX" + PLANE_AXES + CHANNEL_AXES]
    if (len(unknown) == 1 and axes[0] in UNKNOWN_AXES and shape[0] <= MAX_CHANNELS_FIRST
            and not any(a in CHANNEL_AXES for a in axes)):
        axes, unknown = "C" + axes[1:], []  # channels first, saved without metadata
        stored[next(i for i, a in enumerate(stored) if a != DROPPED)] = "C"
    if unknown or "Y" not in axes or "X" not in axes:
        raise InputError(f"{path}: cannot tell the axes of shape {shape} (file says {axes!r}); pass "
                         f"{flag(choice, 'axes')} with one letter per axis, e.g. {flag(choice, 'axes')} "
                         f"{_axes_hint(len(shape))}")
    if sum(a in CHANNEL_AXES for a in axes) > 1:
        raise InputError(f"{path}: two channel axes in {axes!r} {shape}; pass {flag(choice, 'axes')} to say which "
                         "is C")
    return axes, shape, "".join(stored)


def _tiff_header(path: Path, choice: PlaneChoice) -> tuple[_Header, object]:
    import tifffile

    tif = tifffile.TiffFile(path)
    try:
        series = tif.series[0]
        axes, shape, stored = _final_axes(path, series.axes, tuple(series.shape), choice)
        page = getattr(series, "keyframe", None) or tif.pages[0]
        alpha = any(int(e) in (1, 2) for e in getattr(page, "extrasamples", ()))  # ASSOCALPHA, UNASSALPHA
        header = _Header(axes, shape, np.dtype(series.dtype), alpha and any(a in CHANNEL_AXES for a in axes), stored)
        return header, tif
    except BaseException:
        tif.close()
        raise


def _zarr_header(path: Path, choice: PlaneChoice) -> tuple[_Header, Source]:
    """Header of an OME-Zarr image or a plain Zarr array (axes: ``choice.axes``, the OME-Zarr axes, or YX for a
    2-D array), and its ``Source``."""
    source = zarr_source(path)
    axes = source.axes or ("YX" if len(source.shape) == 2 else None)
    if axes is None and choice.axes is None:
        raise InputError(f"{path}: Zarr array of shape {source.shape} without axis names; pass {flag(choice, 'axes')} "
                         f"with one letter per axis, e.g. {flag(choice, 'axes')} {_axes_hint(len(source.shape))}")
    axes, shape, stored = _final_axes(path, axes or "", source.shape, choice)
    return _Header(axes, shape, source.dtype, False, stored), source


@contextlib.contextmanager
def _pillow_open(path: Path) -> Iterator[object]:
    """Pillow image opened lazily, with Pillow's own bomb check off: ours (on the header's size) replaces it."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:
            yield im
    finally:
        Image.MAX_IMAGE_PIXELS = limit


_PIL_BANDS = {"1": 1, "L": 1, "I": 1, "F": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "LA": 2, "PA": 4, "RGB": 3,
              "RGBA": 4, "P": 3}
_PIL_DTYPE = {"1": np.uint8, "I": np.int32, "F": np.float32, "I;16": np.uint16, "I;16B": np.uint16,
              "I;16L": np.uint16}


def _pillow_header(path: Path, im: object, choice: PlaneChoice) -> _Header:
    width, height = im.size
    mode = im.mode
    bands = _PIL_BANDS.get(mode, 3)  # other modes (CMYK, YCbCr, LAB, HSV) are converted to RGB
    if mode == "P" and "transparency" in im.info:
        bands = 4
    shape = (height, width) if bands == 1 else (height, width, bands)
    axes, shape, _ = _final_axes(path, "YX" if bands == 1 else "YXC", shape, choice)
    return _Header(axes, shape, np.dtype(_PIL_DTYPE.get(mode, np.uint8)), mode in ("LA", "PA", "RGBA") or bands == 4)


def _pillow_pixels(im: object) -> np.ndarray:
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    elif im.mode not in _PIL_BANDS:
        im = im.convert("RGB")
    arr = np.asarray(im)
    return arr.astype(np.uint8) if arr.dtype == bool else arr


def _check(path: Path, header: _Header, choice: PlaneChoice, one: bool = False,
           lazy: bool = False) -> list[tuple[str, dict[str, int]]]:
    """Validate a header against the choice (``one``: it must give exactly one plane; ``lazy``: read region by
    region, so not bounded by ``choice.max_bytes``); the planes as (label, {axis: index})."""
    if not lazy:
        _refuse_size(path, header, choice)
    sizes = dict(zip(header.axes, header.shape, strict=True))
    if header.dtype.kind not in "buif":
        raise InputError(f"{path}: pixel type {header.dtype} is not supported; save real-valued pixels (integer or "
                         "float)")
    if sizes["Y"] < choice.min_side or sizes["X"] < choice.min_side:
        raise InputError(f"{path}: image is {sizes['Y']}x{sizes['X']} pixels; gains needs at least {choice.min_side} "
                         f"on each side (wrong axes? pass {flag(choice, 'axes')})")
    n_channels = next((sizes[a] for a in CHANNEL_AXES if a in sizes), 1)
    if choice.channels is not None:
        bad = [c for c in choice.channels if c >= n_channels]
        if bad:
            raise InputError(f"{path}: {flag(choice, 'channels')} {bad[0]} but the image has {n_channels} channel(s) "
                             f"(0..{n_channels - 1})")
    elif n_channels - header.alpha > 3:
        opt = flag(choice, "channels")
        raise InputError(f"{path}: {n_channels} channels; pass {opt} with up to 3 of them in the order the model "
                         f"should see them, e.g. {opt} 0 or {opt} 0,2")
    choices = {"Z": choice.z, "T": choice.t}
    picks: list[list[tuple[str, int]]] = [[]]
    for axis in PLANE_AXES:
        if axis not in sizes:
            continue
        wanted = choices[axis]
        if wanted is not None and wanted >= sizes[axis]:
            raise InputError(f"{path}: {flag(choice, axis.lower())} {wanted} but the image has {sizes[axis]} {axis} "
                             f"planes (0..{sizes[axis] - 1}); pass an index in range or all")
        indices = range(sizes[axis]) if wanted is None else [wanted]
        picks = [[*p, (axis, i)] for p in picks for i in indices]
    if one:
        _refuse_planes(path, sizes, len(picks), choice)
    return [("_".join(f"{a.lower()}{i}" for a, i in p), dict(p)) for p in picks]


def _refuse_planes(path: Path, sizes: dict[str, int], n_planes: int, choice: PlaneChoice) -> None:
    """Refuse a file that gives several planes where one image is wanted, or a plane index > 0 for an axis it
    lacks."""
    if n_planes > 1:
        opts = " and ".join(flag(choice, a.lower()) for a in PLANE_AXES if a in sizes and getattr(choice, a.lower())
                            is None)
        planes = ", ".join(f"{sizes[a]} {a}" for a in PLANE_AXES if a in sizes)
        raise InputError(f"{path}: {n_planes} planes ({planes}) where one image is wanted; pick one with {opts}")
    for axis in PLANE_AXES:
        wanted = getattr(choice, axis.lower())
        if wanted and axis not in sizes:
            raise InputError(f"{path}: {flag(choice, axis.lower())} {wanted} but the image has no {axis} planes; "
                             f"leave {flag(choice, axis.lower())} out")


def check_inputs(paths: list[Path], choice: PlaneChoice = PlaneChoice(),
                 lazy: bool | None = False) -> list[tuple[Path, str]]:
    """(file, plane label) of every plane ``read_planes(path, choice, lazy)`` would return for each of ``paths``
    (``check_input``).

    Raises:
        InputError: a file ``check_input`` refuses, or ``choice.z`` / ``choice.t`` set while no file has that axis
            (an image without it is predicted whole; a plane index for none of them is a mistake).
    """
    planes = [(path, plane) for path in paths for plane in _header_planes(path, choice, lazy=lazy)[1]]
    for axis, wanted in (("Z", choice.z), ("T", choice.t)):
        if wanted is not None and not any(axis in index for _, (_, index) in planes):
            others = len(paths) - 1
            files = f"{paths[0]}" + (f" (and {others} other input{'s' * (others > 1)})" if others else "")
            raise InputError(f"{files}: --{axis.lower()} {wanted} but no input has a {axis} axis; leave "
                             f"--{axis.lower()} out")
    return [(path, label) for path, (label, _) in planes]


def check_input(path: str | Path, choice: PlaneChoice = PlaneChoice(), lazy: bool | None = False) -> list[str]:
    """The plane labels ``read_planes(path, choice, lazy)`` would return, from the header alone (nothing decoded).

    Raises:
        InputError: the file cannot be used (see the module docstring), in one line naming it.
    """
    return [label for label, _ in _header_planes(path, choice, lazy=lazy)[1]]


def is_image_path(path: str | Path) -> bool:
    """Whether ``path`` is an image ``read_planes`` reads: a file with one of ``IMAGE_SUFFIXES`` or a Zarr folder."""
    path = Path(path)
    return (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES) or is_zarr(path)


def _is_lazy(path: Path, header: _Header, lazy: bool | None) -> bool:
    """Whether ``read_planes`` reads this file region by region (see the module docstring)."""
    if lazy is False or not (is_zarr(path) or path.suffix.lower() in TIFF_SUFFIXES):
        return False
    return lazy is True or is_zarr(path) or _decoded_bytes(header) > LAZY_BYTES


def _header_planes(path: str | Path, choice: PlaneChoice, one: bool = False, verify: bool = False,
                   lazy: bool | None = False) -> tuple[_Header, list[tuple[str, dict[str, int]]]]:
    """The file's header and ``_check`` of it: its planes as (label, {axis: index}); ``verify``: Pillow also checks
    the whole file (truncation, checksums) without decoding it."""
    path = _existing(path)
    try:
        if is_zarr(path):
            header, _ = _zarr_header(path, choice)
        elif path.suffix.lower() in TIFF_SUFFIXES:
            header, tif = _tiff_header(path, choice)
            tif.close()
        else:
            with _pillow_open(path) as im:
                header = _pillow_header(path, im, choice)
                if verify:
                    im.verify()
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: unreadable image ({exc})") from exc
    return header, _check(path, header, choice, one, _is_lazy(path, header, lazy))


def image_size(path: str | Path, plane: PlaneChoice = DATASET_PLANE, lazy: bool | None = False) -> tuple[int, int]:
    """(height, width) of the one plane ``read_image`` reads (``read_planes`` with ``lazy`` where the choice picks
    one plane), from the header (nothing decoded; Pillow files are checked for truncation).

    Raises:
        InputError: the file is missing, unreadable, corrupt, or not one plane (see the module docstring).
    """
    header, _ = _header_planes(path, plane, one=True, verify=True, lazy=lazy)
    return header.shape[header.axes.index("Y")], header.shape[header.axes.index("X")]


def read_image(path: str | Path, plane: PlaneChoice = DATASET_PLANE) -> np.ndarray:
    """Pixels (H, W) or (H, W, C<=3) of the one plane of a file that ``plane`` picks (a dataset image, a mask or
    label file: see the module docstring).

    Raises:
        InputError: the file cannot be used, or gives several planes, in one line naming it.
    """
    return _read_planes(path, plane, True)[0].pixels


def read_planes(path: str | Path, choice: PlaneChoice = PlaneChoice(), lazy: bool | None = False) -> list[Plane]:
    """The 2-D planes of an image file or Zarr folder (see the module docstring), each (H, W) or (H, W, C<=3).

    Args:
        path: an image file or a Zarr folder (``is_image_path``).
        choice: planes, channels and axes to take, and the limits.
        lazy: False: pixels decoded into arrays (bounded by ``choice.max_bytes``); None: ``LazyPlane`` pixels for
            Zarr folders and TIFFs over ``LAZY_BYTES`` decoded; True: ``LazyPlane`` for every TIFF and Zarr.
            Lazy planes skip the ``max_bytes`` refusal (only the regions sliced are decoded).

    Raises:
        InputError: the file cannot be used, in one line naming it and what to pass.
    """
    return _read_planes(path, choice, False, lazy)


def _read_planes(path: str | Path, choice: PlaneChoice, one: bool, lazy: bool | None = False) -> list[Plane]:
    path = _existing(path)
    try:
        if is_zarr(path):
            header, source = _zarr_header(path, choice)
            lazy = _is_lazy(path, header, lazy)
            planes = _check(path, header, choice, one, lazy)
            pixels = [_lazy_plane(source, header, index, choice, label) for label, index in planes]
            return [Plane(label, p if lazy else p[:, :]) for (label, _), p in zip(planes, pixels, strict=True)]
        if path.suffix.lower() in TIFF_SUFFIXES:
            header, tif = _tiff_header(path, choice)
            with tif:
                lazy = _is_lazy(path, header, lazy)
                planes = _check(path, header, choice, one, lazy)
                if lazy:
                    source = tiff_source(path, tif.series[0])
                    return [Plane(label, _lazy_plane(source, header, index, choice, label)) for label, index in planes]
                data = np.asarray(tif.series[0].asarray()).reshape(header.shape)
        else:
            with _pillow_open(path) as im:
                header = _pillow_header(path, im, choice)
                planes = _check(path, header, choice, one)
                im.load()
                data = _pillow_pixels(im).reshape(header.shape)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: unreadable image ({exc})") from exc
    return [Plane(label, _plane_pixels(data, header, index, choice)) for label, index in planes]


def _lazy_plane(source: Source, header: _Header, index: dict[str, int], choice: PlaneChoice,
                label: str) -> LazyPlane:
    """The ``LazyPlane`` of one plane: what ``_plane_pixels`` does, as a selection of the stored axes."""
    take: list[int | None] = [0 if a == DROPPED else index.get(a) for a in header.stored]
    channel = next((i for i, a in enumerate(header.stored) if a in CHANNEL_AXES), None)
    channels = None
    if channel is not None:
        channels = _channels(header, choice, source.shape[channel])
        if channels is not None and len(channels) == 1:  # one channel: squeezed, like the eager plane
            take[channel], channels = channels[0], None
    return LazyPlane(source, header.stored, tuple(take), channels, label)


def _plane_pixels(data: np.ndarray, header: _Header, index: dict[str, int], choice: PlaneChoice) -> np.ndarray:
    """(H, W) or (H, W, C) of one plane: Z/T indexed, channels last and chosen, alpha dropped, dtype widened."""
    axes = header.axes
    for axis, i in index.items():
        data = np.take(data, i, axis=axes.index(axis))
        axes = axes.replace(axis, "")
    order = [axes.index("Y"), axes.index("X")] + [axes.index(a) for a in axes if a in CHANNEL_AXES]
    data = np.transpose(data, order)
    if data.ndim == 3:
        channels = _channels(header, choice, data.shape[-1])
        if channels is not None:
            data = data[..., list(channels)]
        if data.shape[-1] == 1:
            data = data[..., 0]
    return np.ascontiguousarray(data, dtype=native_dtype(data.dtype))


def _channels(header: _Header, choice: PlaneChoice, n_channels: int) -> tuple[int, ...] | None:
    """The channels a plane keeps, in order, of the file's ``n_channels`` (None: all): the chosen ones, else all
    but alpha."""
    return choice.channels or (tuple(range(n_channels - 1)) if header.alpha else None)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not (path.is_file() or is_zarr(path)):
        raise InputError(f"{path}: image file not found")
    return path


def encode_tiff(array: np.ndarray) -> bytes:
    """TIFF bytes of an array at full bit depth, for atomic writes (the reader reads them back as they were)."""
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, array)
    return buf.getvalue()
