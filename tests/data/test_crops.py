"""CropStack: flips and quarter turns of crops give exactly the pixels of the same operation on the dense stack."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gains.data.crops import CropStack, dense
from gains.data.transforms import RandomFlip, RandomRot90


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
