"""CropStack: flips, quarter turns and resizes of crops give the pixels of the same operation on the dense stack."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gains.data.crops import CropStack, dense
from gains.data.transforms import RandomFlip, RandomRot90
from gains.models.transform import GainsTransform


def stack(seed: int, dtype: type = np.float32) -> CropStack:
    """Five maps of a 23 x 31 frame: crops of random sizes and places (one touching each border, one empty)."""
    rng = np.random.default_rng(seed)
    parts = [(0, 3, rng.random((4, 7)), 1.0), (19, 0, rng.random((4, 5)), 1.0), (5, 25, rng.random((9, 6)), 0.5),
             (7, 9, None, 1.0), (rng.integers(0, 10), rng.integers(0, 10), rng.random((3, 12)), 0.0)]
    return CropStack.of(23, 31, [(y, x, None if v is None else v.astype(dtype), f) for y, x, v, f in parts], dtype)


def test_dense_places_crops_on_their_fill() -> None:
    s = stack(0)
    d = s.dense()
    assert d.shape == (5, 23, 31) and d.dtype == torch.float32 and s.shape == (5, 23, 31) and len(s) == 5
    assert torch.equal(d[3], torch.ones(23, 31))  # no crop: the fill everywhere
    assert float(d[2, 0, 0]) == 0.5 and torch.equal(d[2, 5:14, 25:31], torch.from_numpy(s.crops[2]))
    outside = d[0].clone()
    outside[0:4, 3:10] = 1.0
    assert torch.equal(outside, torch.ones(23, 31))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dims", [[-1], [-2], [-1, -2]])
def test_flip_matches_the_dense_flip(seed: int, dims: list[int]) -> None:
    s = stack(seed)
    assert torch.equal(s.flip(dims).dense(), s.dense().flip(dims))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", range(6))
def test_rot90_matches_the_dense_rotation(seed: int, k: int) -> None:
    s = stack(seed, np.uint8)
    turned = s.rot90(k)
    assert turned.shape == (5, 31, 23) if k % 2 else (5, 23, 31)
    assert torch.equal(turned.dense(), s.dense().rot90(k, dims=(-2, -1)))


def test_rot90_refuses_other_dims() -> None:
    with pytest.raises(ValueError, match="dims"):
        stack(0).rot90(1, dims=(-1, -2))


@pytest.mark.parametrize("seed", range(4))
def test_paired_transforms_move_crop_stacks_like_tensors(seed: int) -> None:
    s = stack(seed)
    image = torch.rand(3, 23, 31)
    boxes = torch.tensor([[x, y, x + w, y + h] for y, x, h, w in s.boxes.tolist()], dtype=torch.float32)
    lazy = {"masks": s, "ga_maps": s, "boxes": boxes}
    eager = {"masks": s.dense(), "ga_maps": s.dense(), "boxes": boxes}
    for t in (RandomFlip(0.5, 0.5), RandomRot90(0.8), RandomFlip(0.5, 0.5)):
        torch.manual_seed(seed)
        _, lazy = t(image, lazy)
        torch.manual_seed(seed)
        image, eager = t(image, eager)
    for key in ("masks", "ga_maps", "boxes"):
        assert torch.equal(dense(lazy[key]), eager[key]), key


def random_stack(rng: np.random.Generator, dtype: type) -> CropStack:
    """Six maps of a random frame (5-90 px a side): crops of random sizes and places, one without a crop,
    fills 0, 1 and 0.5; uint8 maps are 0/1 masks on a 0 fill."""
    height, width = (int(v) for v in rng.integers(5, 90, 2))
    parts = []
    for k in range(6):
        h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        values = 1.0 + rng.random((h, w)) if k != 4 else None
        if dtype is np.uint8:
            parts.append((y, x, None if values is None else (values > 1.5).astype(np.uint8), 0.0))
        else:
            parts.append((y, x, None if values is None else values.astype(np.float32), (0.0, 1.0, 0.5)[k % 3]))
    return CropStack.of(height, width, parts, dtype)


@pytest.mark.parametrize("seed", range(16))
def test_resized_gives_the_pixels_of_interpolating_the_dense_stack(seed: int) -> None:
    """Down- and up-scaling by any ratio: masks (nearest-exact) equal, GA maps (bilinear) to float32 rounding;
    the crop may be flipped or turned first (views with negative strides)."""
    rng = np.random.default_rng(seed)
    size = tuple(int(v) for v in rng.integers(3, 130, 2))
    masks, maps = random_stack(rng, np.uint8), random_stack(rng, np.float32).flip([-1]).rot90(seed % 4)
    want = F.interpolate(masks.dense()[None], size=size, mode="nearest-exact")[0]
    got = masks.resized(*size, "nearest-exact")
    assert got.dtype == torch.uint8 and torch.equal(got, want)
    want = F.interpolate(maps.dense()[None], size=size, mode="bilinear", align_corners=False)[0]
    got = maps.resized(*size, "bilinear")
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert float((got - want).abs().max()) <= 5e-7  # values in [0, 2]: a few float32 ulps


def test_resized_keeps_an_empty_stack_and_refuses_other_modes() -> None:
    empty = CropStack.of(20, 30, [], np.float32)
    assert empty.resized(10, 15, "bilinear").shape == (0, 10, 15)
    with pytest.raises(ValueError, match="bicubic"):
        stack(0).resized(10, 10, "bicubic")


def test_to_keeps_crops_on_the_cpu_and_is_dense_elsewhere() -> None:
    s = stack(1)
    assert s.to("cpu") is s and s.to(torch.device("cpu")) is s
    moved = s.to("meta")
    assert isinstance(moved, torch.Tensor) and moved.device.type == "meta" and moved.shape == s.shape


@pytest.mark.parametrize("seed", range(3))
def test_model_transform_resizes_crop_stacks_like_dense_targets(seed: int) -> None:
    """GainsTransform takes masks and GA maps as crops and gives the targets it gives for the dense stacks
    (resized, and at the image's own size when no resize is needed)."""
    rng = np.random.default_rng(seed)
    masks = random_stack(rng, np.uint8)
    maps = CropStack.of(masks.height, masks.width, [(y0, x0, 1.0 + c.astype(np.float32) * 0.3, 1.0) for (y0, x0, *_),
                                                    c in zip(masks.boxes.tolist(), masks.crops, strict=True)],
                        np.float32)
    boxes = torch.tensor([[x, y, x + w, y + h] for y, x, h, w in masks.boxes.tolist()], dtype=torch.float32)
    image = torch.rand(3, masks.height, masks.width)
    for side in (48, min(masks.height, masks.width)):
        tr = GainsTransform([side], side, 1000, [0.0] * 3, [1.0] * 3).train()
        lazy = {"boxes": boxes, "masks": masks, "ga_maps": maps}
        eager = {"boxes": boxes, "masks": masks.dense(), "ga_maps": maps.dense()}
        (a, (got,)), (b, (want,)) = tr([image], [lazy]), tr([image], [eager])
        assert torch.equal(a.tensors, b.tensors) and torch.equal(got["boxes"], want["boxes"])
        assert torch.equal(got["masks"], want["masks"])
        assert got["ga_maps"].shape == want["ga_maps"].shape
        assert float((got["ga_maps"] - want["ga_maps"]).abs().max()) <= 5e-7
