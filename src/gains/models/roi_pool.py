"""RoIAlign for CPU training: torchvision's ``MultiScaleRoIAlign`` with its bilinear sampling done as one weighted
row gather over channels-last features (``embedding_bag``), so that forward and backward are vectorised over
channels and RoIs. torchvision's CPU kernel computes every sample's weights again for each channel and its
backward scatters one value at a time; in a CPU training step that backward was a quarter of the time.

Same numbers as torchvision's kernel (``aligned=False``, ``sampling_ratio`` 0 = adaptive, the FPN level of each
box by the same rule), up to the order of float additions. Used only where autograd records (training on the
CPU); inference, scripting, tracing and CUDA keep torchvision's op.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.poolers import LevelMapper


class GatherRoIAlign(MultiScaleRoIAlign):
    """``MultiScaleRoIAlign`` whose CPU training forward (and so backward) runs ``gather_roi_align``.

    Same arguments, state and outputs: features {name: [N, C, H_l, W_l]}, boxes [R_i, 4] per image (x1, y1,
    x2, y2, image pixels), image sizes (H, W) -> [sum R_i, C, out_h, out_w].
    """

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        feats = [x[k] for k in self.featmap_names]
        if feats[0].device.type != "cpu" or not torch.is_grad_enabled() or torch.jit.is_scripting() \
                or torch.jit.is_tracing() or self.sampling_ratio > 0:
            return super().forward(x, boxes, image_shapes)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = level_scales(feats, image_shapes, self.canonical_scale,
                                                        self.canonical_level)
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)])
        levels = self.map_levels(boxes) if len(feats) > 1 else torch.zeros(len(rois), dtype=torch.int64)
        return gather_roi_align(feats, self.scales, rois, levels, self.output_size)


def level_scales(feats: list[Tensor], image_shapes: list[tuple[int, int]], canonical_scale: int,
                 canonical_level: int) -> tuple[list[float], LevelMapper]:
    """torchvision's rule: each level's scale is the power of two nearest (feature height / largest image
    height); the level mapper spans the levels those scales name."""
    height = max(s[0] for s in image_shapes)
    scales = [2.0 ** round(math.log2(f.shape[-2] / height)) for f in feats]
    k_min, k_max = int(-math.log2(scales[0])), int(-math.log2(scales[-1]))
    return scales, LevelMapper(k_min, k_max, canonical_scale=canonical_scale, canonical_level=canonical_level)


def _axis(start: Tensor, length: Tensor, bins: int, grid: Tensor, size: Tensor) -> tuple[Tensor, Tensor]:
    """One axis of the sampling, in the kernel's float order: RoIs [R] -> (low and high pixel [R, bins, G, 2],
    their bilinear weights [R, bins, G, 2], 0 for samples past the RoI's grid or outside the map), G the
    largest grid of the RoIs."""
    g = int(grid.max().item()) if grid.numel() else 1
    step = length / bins
    k = torch.arange(g, dtype=start.dtype)
    b = torch.arange(bins, dtype=start.dtype)
    pos = (start[:, None, None] + b[None, :, None] * step[:, None, None]) \
        + (k[None, None, :] + 0.5) * step[:, None, None] / grid.to(start.dtype)[:, None, None]
    limit = size[:, None, None]
    valid = (k[None, None, :] < grid[:, None, None]) & (pos >= -1.0) & (pos <= limit.to(pos.dtype))
    pos = pos.clamp(min=0)
    low = pos.to(torch.int64)
    edge = low >= limit - 1
    low = torch.where(edge, limit - 1, low)
    high = torch.where(edge, low, low + 1)
    frac = torch.where(edge, torch.zeros_like(pos), pos - low.to(pos.dtype))
    return torch.stack([low, high], dim=-1), torch.stack([1.0 - frac, frac], dim=-1) * valid[..., None]


def gather_roi_align(feats: list[Tensor], scales: list[float], rois: Tensor, levels: Tensor,
                     output_size: tuple[int, int] | list[int]) -> Tensor:
    """RoIAlign (``aligned=False``, adaptive sampling) of ``rois`` [R, 5] (image index, x1, y1, x2, y2) on their
    ``levels`` [R] of ``feats`` (each [N, C, H_l, W_l], scale ``scales[l]``) -> [R, C, out_h, out_w] in the
    features' dtype (computed in float32, as torchvision's autocast does)."""
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    n, c = feats[0].shape[:2]
    dtype = feats[0].dtype
    if not len(rois):
        return feats[0].new_zeros((0, c, out_h, out_w))
    with torch.autocast("cpu", enabled=False):
        table = torch.cat([f.float().permute(0, 2, 3, 1).reshape(-1, c) for f in feats])  # [sum N H W, C]
        heights = torch.tensor([f.shape[-2] for f in feats])
        widths = torch.tensor([f.shape[-1] for f in feats])
        starts = torch.tensor([0] + [n * f.shape[-2] * f.shape[-1] for f in feats[:-1]]).cumsum(0)
        rois = rois.float()
        scale = torch.tensor(scales, dtype=torch.float32)[levels]
        height, width = heights[levels], widths[levels]
        x1, y1 = rois[:, 1] * scale, rois[:, 2] * scale
        roi_w = (rois[:, 3] * scale - x1).clamp(min=1.0)
        roi_h = (rois[:, 4] * scale - y1).clamp(min=1.0)
        grid_h, grid_w = torch.ceil(roi_h / out_h).to(torch.int64), torch.ceil(roi_w / out_w).to(torch.int64)
        ys, wy = _axis(y1, roi_h, out_h, grid_h, height)  # [R, out_h, Gh, 2]
        xs, wx = _axis(x1, roi_w, out_w, grid_w, width)   # [R, out_w, Gw, 2]
        base = starts[levels] + rois[:, 0].to(torch.int64) * height * width  # first row of the RoI's map
        r = len(rois)
        rows = (base[:, None, None, None, None, None, None]
                + ys[:, :, None, :, None, :, None] * width[:, None, None, None, None, None, None]
                + xs[:, None, :, None, :, None, :])  # [R, out_h, out_w, Gh, Gw, 2, 2]
        count = (grid_h * grid_w).clamp(min=1).to(torch.float32)
        weight = (wy[:, :, None, :, None, :, None] * wx[:, None, :, None, :, None, :]
                  / count[:, None, None, None, None, None, None])
        rows, weight = rows.reshape(r * out_h * out_w, -1), weight.reshape(r * out_h * out_w, -1)
        keep = weight != 0
        offsets = torch.zeros(r * out_h * out_w, dtype=torch.int64)
        offsets[1:] = keep.sum(1).cumsum(0)[:-1]
        pooled = F.embedding_bag(rows[keep], table, offsets, mode="sum", per_sample_weights=weight[keep])
    return pooled.reshape(r, out_h, out_w, c).permute(0, 3, 1, 2).contiguous().to(dtype)


def torchvision_pool(pool: MultiScaleRoIAlign) -> MultiScaleRoIAlign:
    """A plain torchvision ``MultiScaleRoIAlign`` with ``pool``'s settings, for graphs that are scripted or
    traced (exports): they compile the pool's own forward, which must be torchvision's."""
    return MultiScaleRoIAlign(list(pool.featmap_names), pool.output_size, pool.sampling_ratio,
                              canonical_scale=pool.canonical_scale, canonical_level=pool.canonical_level)
