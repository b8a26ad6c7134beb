"""What to take from an image file: the plane, channels and axes (``PlaneChoice``), from command-line options
(``--z``, ``--t``, ``--channels``, ``--axes``) or from a COCO image entry's optional keys ``"z"``, ``"t"``,
``"channels"``, ``"axes"`` (``dataset_plane``). ``gains.core.images`` reads files by these choices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gains.errors import InputError

MIN_SIDE = 16  # pixels; smaller images hold nothing a detector can segment
DEFAULT_MAX_BYTES = 4 << 30  # decoded size of one file's series; raise with --max-input-gib


@dataclass(frozen=True)
class PlaneChoice:
    """What to take from a file.

    Attributes:
        channels: indices into the file's channel axis, 1-3 of them, in the order the model sees them
            (None: every channel, alpha dropped; more than 3 must be chosen).
        z: the Z plane index, or None for every plane.
        t: the T (time point) index, or None for every one.
        axes: axis letters that replace the file's own (e.g. ``"ZYX"``, ``"YXC"``), one per axis.
        max_bytes: largest decoded size of a file's series accepted, after ``scale``.
        scale: pixel scale the planes get before the model (``--scale``, ``--object-size``); an upscale
            counts against ``max_bytes`` as the decoded size times ``scale`` squared.
        min_side: smallest height and width accepted, in pixels.
        keys: messages name the COCO image keys (``"z"``) that set this choice rather than options (``--z``).
    """

    channels: tuple[int, ...] | None = None
    z: int | None = None
    t: int | None = None
    axes: str | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    scale: float = 1.0
    min_side: int = MIN_SIDE
    keys: bool = False


PLANE_KEYS = ("z", "t", "channels", "axes")  # optional COCO image keys: the plane of a dataset image
DATASET_PLANE = PlaneChoice(min_side=1, keys=True)  # a dataset image entry without plane keys




def flag(choice: PlaneChoice, key: str) -> str:
    """How a message names a setting: ``--z`` on the command line, ``"z"`` in a dataset's image entry."""
    return f'"{key}"' if choice.keys else f"--{key}"


def dataset_plane(entry: Mapping[str, Any], where: str) -> PlaneChoice:
    """The ``PlaneChoice`` of a COCO image entry's optional ``PLANE_KEYS`` (see the module docstring).

    Raises:
        InputError: a key of the wrong type (``where``: names the file and image).
    """
    z, t, channels, axes = (entry.get(k) for k in PLANE_KEYS)
    for key, value in (("z", z), ("t", t)):
        if value is not None and (type(value) is not int or value < 0):
            raise InputError(f'{where}: "{key}" must be a plane index (0, 1, ...), not {value!r}')
    if channels is not None:
        if (not isinstance(channels, list) or not 1 <= len(channels) <= 3
                or any(type(c) is not int or c < 0 for c in channels)):
            raise InputError(f'{where}: "channels" must be a list of 1 to 3 channel indices, e.g. [0, 2], '
                             f"not {channels!r}")
        channels = tuple(channels)
    if axes is not None and (not isinstance(axes, str) or not axes):
        raise InputError(f'{where}: "axes" must be a string of axis letters, e.g. "ZYX", not {axes!r}')
    return replace(DATASET_PLANE, z=z, t=t, channels=channels, axes=axes)


def plane_keys(choice: PlaneChoice) -> dict[str, Any]:
    """The COCO image keys that ``dataset_plane`` reads back as ``choice`` (only those set)."""
    values = {key: getattr(choice, key) for key in PLANE_KEYS}
    return {k: list(v) if k == "channels" else v for k, v in values.items() if v is not None}


def label_plane(label: str) -> PlaneChoice:
    """The dataset ``PlaneChoice`` of a plane label of ``read_planes`` (``"z3_t0"``; ``""`` for a 2-D file)."""
    picks = {part[0]: int(part[1:]) for part in label.split("_") if part}
    return replace(DATASET_PLANE, z=picks.get("z"), t=picks.get("t"))


def parse_channels(text: str) -> tuple[int, ...]:
    """``"0,2"`` -> ``(0, 2)``: 1-3 non-negative channel indices.

    Raises:
        InputError: not 1-3 comma-separated non-negative integers.
    """
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not 1 <= len(values) <= 3 or min(values) < 0:
        raise InputError(f"--channels {text!r}: give 1 to 3 channel indices, e.g. --channels 0 or --channels 0,2")
    return values


def parse_plane(text: str, option: str) -> int | None:
    """``"all"`` -> None (every plane), ``"3"`` -> 3.

    Raises:
        InputError: neither ``all`` nor a non-negative integer.
    """
    if text == "all":
        return None
    if not text.isdigit():
        raise InputError(f"{option} {text!r}: give a plane index (0, 1, ...) or all")
    return int(text)
