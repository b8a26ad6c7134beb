"""The plane of an nD napari image layer that the viewer shows, and result layers placed back on it.

A layer's data is (..., Y, X) or, for RGB(A), (..., Y, X, C); the leading axes (Z, T, channels kept as an
axis) are sliced at the viewer's current position, in the layer's own data coordinates. Results are 2-D
arrays; they go back into the viewer as (1, ..., 1, Y, X) layers translated to that position, so they show
on that plane only and keep the image's scale. No napari or Qt import here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gains.errors import InputError
from gains.napari.layers import LayerData


def plane_index(shape: Sequence[int], rgb: bool, data_point: Sequence[float]) -> tuple[int, ...]:
    """Index of the shown plane along each leading axis of data of ``shape`` (``data_point``: the viewer's
    position in the layer's data coordinates, one value per axis but the colour axis), clipped to the data."""
    lead = len(shape) - (3 if rgb else 2)
    return tuple(int(np.clip(round(float(data_point[i])), 0, shape[i] - 1)) for i in range(lead))


def plane_pixels(data: Any, rgb: bool, index: tuple[int, ...]) -> np.ndarray:
    """The (Y, X) or (Y, X, C) plane of ``data`` at ``index`` (leading axes), read from a lazy array only there.

    Raises:
        InputError: data with fewer than two spatial axes.
    """
    if len(data.shape) < (3 if rgb else 2):
        raise InputError(f"a 2-D image or a stack of them is needed, got shape {tuple(data.shape)}")
    return np.asarray(data[index] if index else data)


def plane_name(name: str, index: tuple[int, ...]) -> str:
    """Layer name stem of the results of plane ``index``: ``name``, or e.g. ``"cells [3]"``, ``"cells [0, 3]"``."""
    return f"{name} [{', '.join(map(str, index))}]" if index else name


def place(layers: list[LayerData], index: tuple[int, ...], scale: Sequence[float], translate: Sequence[float]
          ) -> list[LayerData]:
    """``layers`` of 2-D results put on plane ``index`` of an image layer with ``scale`` and ``translate`` (one
    value per axis, the colour axis excluded): arrays get a length-1 axis per leading axis, and a translation
    to that plane."""
    lead = len(index)
    shift = [float(translate[i]) + index[i] * float(scale[i]) for i in range(lead)]
    out = []
    for data, kwargs, kind in layers:
        kwargs = {**kwargs, "scale": list(scale), "translate": shift + [float(t) for t in translate[lead:]]}
        out.append((data.reshape((1,) * lead + data.shape), kwargs, kind))
    return out
