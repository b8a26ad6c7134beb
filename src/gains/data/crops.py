"""``CropStack``: N per-instance maps of one image kept as crops until a dense stack is needed.

A dense [N, H, W] stack of masks or GA maps costs N x H x W values to build, flip and rotate (a 1024 px
DSB2018 image with 300 nuclei: 300 M per stack), while each instance covers only its box. Map ``j`` of
a stack is ``fills[j]`` everywhere except rows ``y0 : y0 + h`` and columns ``x0 : x0 + w`` (``boxes[j]`` =
``(y0, x0, h, w)``), where it is ``crops[j]``. Flips and quarter turns move boxes and crops only and
give exactly the pixels the same operation on the dense stack gives; ``dense()`` builds the stack.
The paired transforms (``gains.data.transforms``) take a CropStack wherever they take a map stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class CropStack:
    """Maps of a ``height`` x ``width`` frame as crops.

    Args:
        height, width: the frame.
        boxes: int64 [N, 4] ``(y0, x0, h, w)`` of each crop in the frame (h or w 0: no crop).
        crops: N arrays [h, w] (any layout; views are fine) of ``dtype``.
        fills: float64 [N] value of each map outside its crop.
        dtype: numpy dtype of the dense stack (uint8 masks, float32 GA maps).
    """

    height: int
    width: int
    boxes: np.ndarray
    crops: tuple[np.ndarray, ...]
    fills: np.ndarray
    dtype: np.dtype

    @classmethod
    def of(cls, height: int, width: int, parts: Sequence[tuple[int, int, np.ndarray | None, float]],
           dtype: type | np.dtype) -> CropStack:
        """From ``(y0, x0, values [h, w] or None, fill)`` per map (``values`` None: ``fill`` everywhere)."""
        boxes = np.array([(y0, x0, *(v.shape if v is not None else (0, 0))) for y0, x0, v, _ in parts],
                         dtype=np.int64).reshape(-1, 4)
        crops = tuple(v if v is not None else np.zeros((0, 0), dtype=dtype) for _, _, v, _ in parts)
        return cls(height, width, boxes, crops, np.array([f for *_, f in parts], dtype=np.float64), np.dtype(dtype))

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.crops), self.height, self.width

    def __len__(self) -> int:
        return len(self.crops)

    def flip(self, dims: Sequence[int]) -> CropStack:
        """Like ``torch.flip(stack, dims)`` with dims among -1 (columns) and -2 (rows)."""
        boxes, crops = self.boxes.copy(), list(self.crops)
        if -1 in dims:
            boxes[:, 1] = self.width - boxes[:, 1] - boxes[:, 3]
            crops = [c[:, ::-1] for c in crops]
        if -2 in dims:
            boxes[:, 0] = self.height - boxes[:, 0] - boxes[:, 2]
            crops = [c[::-1] for c in crops]
        return CropStack(self.height, self.width, boxes, tuple(crops), self.fills, self.dtype)

    def rot90(self, k: int, dims: Sequence[int] = (-2, -1)) -> CropStack:
        """Like ``torch.rot90(stack, k, dims=(-2, -1))``: each quarter turn sends pixel (row r, column c)
        of an H x W frame to (W - 1 - c, r) of a W x H frame."""
        if tuple(dims) != (-2, -1):
            raise ValueError(f"CropStack.rot90 turns dims (-2, -1), not {tuple(dims)}")
        out = self
        for _ in range(k % 4):
            y0, x0, h, w = out.boxes.T
            boxes = np.stack([out.width - x0 - w, y0, w, h], axis=1)
            out = CropStack(out.width, out.height, boxes, tuple(np.rot90(c) for c in out.crops), out.fills,
                            out.dtype)
        return out

    def dense(self) -> torch.Tensor:
        """The [N, height, width] stack as a tensor of ``dtype``."""
        uniform = len(self.fills) and bool((self.fills == self.fills[0]).all())
        if uniform and self.fills[0] == 0:
            stack = np.zeros(self.shape, dtype=self.dtype)  # zeroed pages come free from the allocator
        elif uniform:
            stack = np.full(self.shape, self.fills[0], dtype=self.dtype)
        else:
            stack = np.empty(self.shape, dtype=self.dtype)
            for j, value in enumerate(self.fills):
                stack[j].fill(value)
        for j, ((y0, x0, h, w), crop) in enumerate(zip(self.boxes.tolist(), self.crops, strict=True)):
            if h and w:
                stack[j, y0 : y0 + h, x0 : x0 + w] = crop
        return torch.from_numpy(stack)


def dense(maps: torch.Tensor | CropStack) -> torch.Tensor:
    """A map stack as a dense tensor (a tensor is returned as it is)."""
    return maps.dense() if isinstance(maps, CropStack) else maps
