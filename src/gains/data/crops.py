"""``CropStack``: N per-instance maps of one image kept as crops until a dense stack is needed.

A dense [N, H, W] stack of masks or GA maps costs N x H x W values to build, flip and rotate (a 1024 px
DSB2018 image with 300 nuclei: 300 M per stack), while each instance covers only its box. Map ``j`` of
a stack is ``fills[j]`` everywhere except rows ``y0 : y0 + h`` and columns ``x0 : x0 + w`` (``boxes[j]`` =
``(y0, x0, h, w)``), where it is ``crops[j]``. Flips and quarter turns move boxes and crops only and
give exactly the pixels the same operation on the dense stack gives; ``dense()`` builds the stack, and
``resized()`` builds it at another size straight from the crops, as the model's transform resizes targets
(a 1024 px image trained at 288 px: a twelfth of the values, and no full-size stack to interpolate).
``cropped()`` cuts a window out of the frame, crops as views (patch training, ``gains.data.patch``), and
``stack[index]`` picks maps.
The paired transforms (``gains.data.transforms``) take a CropStack wherever they take a map stack, and the
model's transform (``gains.models.transform``) takes one wherever it takes masks or GA maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


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

    def __getitem__(self, index: np.ndarray | torch.Tensor | Sequence[int]) -> CropStack:
        """The maps picked by ``index`` (int positions or a bool [N] mask), like ``stack[index]`` of a tensor."""
        picked = np.arange(len(self))[np.asarray(index)]
        return CropStack(self.height, self.width, self.boxes[picked].reshape(-1, 4),
                         tuple(self.crops[j] for j in picked.tolist()), self.fills[picked], self.dtype)

    def cropped(self, y0: int, x0: int, height: int, width: int) -> CropStack:
        """Like ``stack[:, y0 : y0 + height, x0 : x0 + width]`` of the dense stack (the window inside the frame):
        each crop cut to the window, as a view; a map whose crop misses the window is its fill everywhere."""
        if not (0 <= y0 <= self.height - height and 0 <= x0 <= self.width - width and min(height, width) > 0):
            raise ValueError(f"CropStack.cropped: window ({y0}, {x0}, {height}, {width}) outside the "
                             f"{self.height} x {self.width} frame")
        by, bx, bh, bw = self.boxes.T
        top, left = np.maximum(by, y0), np.maximum(bx, x0)
        bottom, right = np.minimum(by + bh, y0 + height), np.minimum(bx + bw, x0 + width)
        inside = (bottom > top) & (right > left)
        boxes = np.where(inside[:, None], np.stack([top - y0, left - x0, bottom - top, right - left], axis=1), 0)
        crops = tuple(c[t - y : b - y, lf - x : r - x] if keep else np.zeros((0, 0), dtype=self.dtype)
                      for c, y, x, t, lf, b, r, keep in zip(self.crops, by.tolist(), bx.tolist(), top.tolist(),
                                                            left.tolist(), bottom.tolist(), right.tolist(),
                                                            inside.tolist(), strict=True))
        return CropStack(height, width, boxes.astype(np.int64).reshape(-1, 4), crops, self.fills, self.dtype)

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

    def to(self, device: torch.device | str) -> CropStack | torch.Tensor:
        """Itself on the CPU (the model's transform makes it dense at its input size); elsewhere the dense
        stack on ``device``."""
        return self if torch.device(device).type == "cpu" else self.dense().to(device)

    def _filled(self, height: int, width: int) -> np.ndarray:
        """[N, height, width] of ``dtype``, each map at its fill."""
        uniform = len(self.fills) and bool((self.fills == self.fills[0]).all())
        if uniform and self.fills[0] == 0:
            return np.zeros((len(self), height, width), dtype=self.dtype)  # zeroed pages come free
        if uniform:
            return np.full((len(self), height, width), self.fills[0], dtype=self.dtype)
        stack = np.empty((len(self), height, width), dtype=self.dtype)
        for j, value in enumerate(self.fills):
            stack[j].fill(value)
        return stack

    def dense(self) -> torch.Tensor:
        """The [N, height, width] stack as a tensor of ``dtype``."""
        stack = self._filled(self.height, self.width)
        for j, ((y0, x0, h, w), crop) in enumerate(zip(self.boxes.tolist(), self.crops, strict=True)):
            if h and w:
                stack[j, y0 : y0 + h, x0 : x0 + w] = crop
        return torch.from_numpy(stack)

    def resized(self, height: int, width: int, mode: str) -> torch.Tensor:
        """The stack at ``height`` x ``width``, as ``F.interpolate(self.dense()[None], (height, width), mode=mode)[0]``
        gives it, built from the crops: ``mode`` "nearest-exact" gives the same values, "bilinear"
        (align_corners=False) the same to float32 rounding.

        Each output pixel mixes at most 2 x 2 source pixels with weights that sum to 1, so it is the fill plus
        the weighted sum of (value - fill) over the crop: only the output rows and columns that read the crop
        are computed. The products run in torch, not numpy: numpy's OpenBLAS keeps its threads spinning after
        a product, and on a 2-core machine they took the cores from the training step that follows
        (docs/BENCHMARKS.md, "OpenBLAS threads").
        """
        if mode not in ("nearest-exact", "bilinear"):
            raise ValueError(f"CropStack.resized: mode {mode!r}, expected 'nearest-exact' or 'bilinear'")
        stack = self._filled(height, width)
        if mode == "nearest-exact":
            rows, cols = _nearest_sources(self.height, height), _nearest_sources(self.width, width)
            for j, ((y0, x0, h, w), crop) in enumerate(zip(self.boxes.tolist(), self.crops, strict=True)):
                r0, r1 = np.searchsorted(rows, [y0, y0 + h])  # sources rise with the output index
                c0, c1 = np.searchsorted(cols, [x0, x0 + w])
                if r1 > r0 and c1 > c0:
                    stack[j, r0:r1, c0:c1] = crop[np.ix_(rows[r0:r1] - y0, cols[c0:c1] - x0)]
            return torch.from_numpy(stack)
        rows, cols = _linear_sources(self.height, height), _linear_sources(self.width, width)
        for j, ((y0, x0, h, w), crop) in enumerate(zip(self.boxes.tolist(), self.crops, strict=True)):
            if not (h and w):
                continue
            r0, r1, wy = _weights(rows, y0, h)
            c0, c1, wx = _weights(cols, x0, w)
            if r1 > r0 and c1 > c0:
                fill = self.fills[j]
                values = np.array(crop, dtype=np.float64, order="C")  # a copy (crops may be reversed views)
                values -= fill
                stack[j, r0:r1, c0:c1] = (torch.from_numpy(wy) @ torch.from_numpy(values) @ torch.from_numpy(wx).T
                                          + fill).numpy()
        return torch.from_numpy(stack)


def _nearest_sources(size: int, out: int) -> np.ndarray:
    """int64 [out]: the source index of each output index in PyTorch's "nearest-exact" resize of ``size`` to
    ``out`` (read from the op itself, so the rounding is PyTorch's)."""
    ramp = torch.arange(size, dtype=torch.float32).view(1, 1, size, 1)
    return F.interpolate(ramp, size=(out, 1), mode="nearest-exact").view(out).to(torch.int64).numpy()


def _linear_sources(size: int, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, l0, l1), each [out]: the two source indices of each output index in a bilinear resize
    (align_corners False) of ``size`` to ``out`` and their weights, by PyTorch's float32 rule (its source
    coordinate ``scale * (i + 0.5) - 0.5`` is one fused multiply-add: rounded once)."""
    scale = np.float32(np.float32(size) / np.float32(out))
    src = np.maximum(np.float64(scale) * (np.arange(out) + 0.5) - 0.5, 0).astype(np.float32)
    i0 = np.minimum(np.floor(src).astype(np.int64), size - 1)
    l1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    return i0, np.minimum(i0 + 1, size - 1), (np.float32(1) - l1).astype(np.float64), l1.astype(np.float64)


def _weights(sources: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], start: int, length: int
             ) -> tuple[int, int, np.ndarray]:
    """(first, end, W): the output indices ``first:end`` whose two sources touch ``start : start + length``,
    and float64 W [end - first, length], their interpolation weights over those source indices."""
    i0, i1, l0, l1 = sources
    first = int(np.searchsorted(i1, start))  # first output reading an index >= start
    end = int(np.searchsorted(i0, start + length))  # first output reading only indices past the crop
    wts = np.zeros((max(end - first, 0), length))
    for index, weight in ((i0, l0), (i1, l1)):
        at = index[first:end] - start
        inside = (at >= 0) & (at < length)
        np.add.at(wts, (np.flatnonzero(inside), at[inside]), weight[first:end][inside])
    return first, end, wts


def dense(maps: torch.Tensor | CropStack) -> torch.Tensor:
    """A map stack as a dense tensor (a tensor is returned as it is)."""
    return maps.dense() if isinstance(maps, CropStack) else maps
