"""Paired transforms keep image, masks, boxes and GA maps aligned."""

from __future__ import annotations

import pytest
import torch

from gains.data.transforms import (
    Compose,
    PhotometricJitter,
    RandomFlip,
    RandomRot90,
    ResizeShortestEdge,
    boxes_from_masks,
    flip_boxes,
    refresh,
    rot90_boxes,
)


def scene() -> tuple[torch.Tensor, dict]:
    """Two rectangles; GA map = 1 + mask, image channel 0 = mask 0, channel 1 = mask 1 (exact markers)."""
    h, w = 40, 60
    masks = torch.zeros((2, h, w), dtype=torch.uint8)
    masks[0, 5:15, 10:30] = 1
    masks[1, 20:38, 35:55] = 1
    image = torch.zeros((3, h, w))
    image[0], image[1] = masks[0].float(), masks[1].float()
    target = {"masks": masks, "ga_maps": 1.0 + masks.float(), "labels": torch.tensor([1, 2]),
              "iscrowd": torch.zeros(2, dtype=torch.int64), "annotation_ids": torch.tensor([7, 9]),
              "image_id": torch.tensor(3)}
    return image, refresh(target)


def assert_aligned(image: torch.Tensor, target: dict, exact: bool) -> None:
    masks = target["masks"].bool()
    assert torch.equal(target["boxes"], boxes_from_masks(target["masks"]))
    assert torch.equal(target["area"], masks.flatten(1).sum(1).float())
    for j in range(masks.shape[0]):
        marker = image[j] >= 0.5
        ga_inside = target["ga_maps"][j] >= 1.5
        if exact:
            assert torch.equal(marker, masks[j]) and torch.equal(ga_inside, masks[j])
        else:  # bilinear vs nearest: they may differ on a one-pixel rim only
            assert (marker ^ masks[j]).float().mean() < 0.025
            assert (ga_inside ^ masks[j]).float().mean() < 0.025
            assert (marker & masks[j]).sum() > 0.8 * masks[j].sum()


def test_initial_boxes_use_pixel_edges() -> None:
    _, target = scene()
    assert target["boxes"].tolist() == [[10, 5, 30, 15], [35, 20, 55, 38]]


@pytest.mark.parametrize("seed", range(6))
def test_flips_and_rotations_are_exact(seed: int) -> None:
    torch.manual_seed(seed)
    image, target = scene()
    for t in (RandomFlip(1.0, 1.0), RandomFlip(1.0, 0.0), RandomRot90(1.0)):
        image, target = t(image, target)
        assert_aligned(image, target, exact=True)
    assert target["annotation_ids"].tolist() == [7, 9] and target["labels"].tolist() == [1, 2]


@pytest.mark.parametrize("k", range(5))
def test_rotated_boxes_equal_boxes_of_rotated_masks(k: int) -> None:
    _, target = scene()  # 40 x 60, neither square nor symmetric
    rotated = target["masks"].rot90(k, dims=(-2, -1))
    assert torch.equal(rot90_boxes(target["boxes"], k, 40, 60), boxes_from_masks(rotated))


@pytest.mark.parametrize("dims", [[-1], [-2], [-1, -2]])
def test_flipped_boxes_equal_boxes_of_flipped_masks(dims: list[int]) -> None:
    _, target = scene()
    assert torch.equal(flip_boxes(target["boxes"], dims, 40, 60), boxes_from_masks(target["masks"].flip(dims)))


def test_horizontal_flip_moves_boxes() -> None:
    image, target = scene()
    _, flipped = RandomFlip(1.0, 0.0)(image, target)
    assert flipped["boxes"].tolist() == [[30, 5, 50, 15], [5, 20, 25, 38]]


@pytest.mark.parametrize(("sizes", "max_size", "shape"), [([80], 1000, (80, 120)), ([20], 1000, (20, 30)),
                                                          ([100], 90, (60, 90))])
def test_resize_shortest_edge_sizes_and_alignment(sizes, max_size, shape) -> None:
    image, target = scene()
    out_img, out = ResizeShortestEdge(sizes, max_size)(image, target)
    assert tuple(out_img.shape[-2:]) == shape
    assert out["masks"].shape[-2:] == out["ga_maps"].shape[-2:] == shape
    assert_aligned(out_img, out, exact=False)
    ga = out["ga_maps"]
    assert ga.min() >= 1.0 and ga.max() <= 2.0  # bilinear stays within the input range


def test_downscaling_drops_vanished_instances_with_all_fields() -> None:
    image, target = scene()
    target = dict(target)
    target["masks"] = target["masks"].clone()
    target["masks"][1] = 0
    target["masks"][1, 31, 41] = 1  # a one-pixel instance that 5x downscaling misses
    target = refresh(target)
    _, out = ResizeShortestEdge([8], 1000)(image, target)
    n = out["masks"].shape[0]
    assert n == 1 and all(out[k].shape[0] == n for k in ("boxes", "labels", "ga_maps", "area", "annotation_ids"))
    assert out["annotation_ids"].tolist() == [7]


def test_compose_and_photometric_jitter_leave_targets_alone() -> None:
    torch.manual_seed(0)
    image, target = scene()
    out_img, out = Compose([PhotometricJitter(0.2, 0.3, 0.3)])(image, target)
    assert out is target and out_img.shape == image.shape
    assert float(out_img.min()) >= 0.0 and float(out_img.max()) <= 1.0 and not torch.equal(out_img, image)


@pytest.mark.parametrize("seed", range(4))
def test_targets_without_ga_maps_move_like_those_with(seed: int) -> None:
    """A baseline's targets carry no GA maps: every transform moves their masks and boxes exactly as it moves
    those of a GAInS target (same random draws) and adds no maps."""
    image, target = scene()
    bare = {k: v for k, v in target.items() if k != "ga_maps"}
    steps = Compose([RandomFlip(0.5, 0.5), RandomRot90(0.75), ResizeShortestEdge([30, 50], 1000)])
    torch.manual_seed(seed)
    _, full = steps(image, target)
    torch.manual_seed(seed)
    _, out = steps(image, bare)
    assert "ga_maps" not in out
    for key in ("masks", "boxes", "area", "labels"):
        assert torch.equal(out[key], full[key]), key
