"""gains.models.roi_pool: the gathered RoIAlign gives torchvision's numbers and gradients, and steps aside where
torchvision's op must run (inference, scripting)."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign

from gains.models.roi_pool import GatherRoIAlign, torchvision_pool

NAMES = ["0", "1", "2", "3"]
IMAGES = [(384, 500), (360, 512)]  # (H, W) before padding; the features are of the padded 384 x 512 batch


def _features(channels: int = 8) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {str(k): torch.randn(2, channels, 96 >> k, 128 >> k, generator=gen, requires_grad=True)
            for k in range(4)}


def _boxes() -> list[torch.Tensor]:
    """Boxes of every FPN level and grid size, sub-pixel ones, boxes over the border and past the image."""
    gen = torch.Generator().manual_seed(1)
    out = []
    for n in (40, 31):
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([520.0, 400.0]) - 10
        wh = torch.rand(n, 2, generator=gen) ** 3 * 300 + 0.3
        out.append(torch.cat([xy, xy + wh], 1))
    out[0][:3] = torch.tensor([[0.0, 0.0, 0.5, 0.5], [495.0, 380.0, 512.0, 400.0], [100.0, 50.0, 100.2, 330.0]])
    out[1][0] = torch.tensor([-20.0, -20.0, 600.0, 500.0])
    return out


@pytest.mark.parametrize("size", [7, 14, (5, 9)])
def test_gathered_roi_align_matches_torchvision_forward_and_backward(size) -> None:
    feats, boxes = _features(), _boxes()
    ref = MultiScaleRoIAlign(NAMES, size, sampling_ratio=0)
    new = GatherRoIAlign(NAMES, size, sampling_ratio=0)
    expected = ref(feats, boxes, IMAGES)
    got = new(feats, boxes, IMAGES)
    assert got.shape == expected.shape == (71, 8, *((size, size) if isinstance(size, int) else size))
    assert got.abs().max() > 1  # the RoIs really sample the features
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    grad_out = torch.randn_like(expected)
    want = torch.autograd.grad(expected, list(feats.values()), grad_out)
    have = torch.autograd.grad(got, list(feats.values()), grad_out)
    for level, (w, h) in enumerate(zip(want, have, strict=True)):
        assert w.abs().sum() > 0, level
        torch.testing.assert_close(h, w, rtol=0, atol=1e-5)
    assert new.scales == ref.scales == [0.25, 0.125, 0.0625, 0.03125]


def test_gathered_roi_align_under_bf16_autocast_returns_the_features_dtype() -> None:
    feats = {k: v.detach().bfloat16().requires_grad_() for k, v in _features().items()}
    boxes = _boxes()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = MultiScaleRoIAlign(NAMES, 7, sampling_ratio=0)(feats, boxes, IMAGES)
        got = GatherRoIAlign(NAMES, 7, sampling_ratio=0)(feats, boxes, IMAGES)
    assert got.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), rtol=1e-2, atol=1e-2)
    got.float().sum().backward()
    assert all(f.grad is not None and f.grad.dtype == torch.bfloat16 for f in feats.values())


def test_gathered_roi_align_of_no_boxes_is_empty() -> None:
    feats = _features()
    empty = [torch.zeros(0, 4), torch.zeros(0, 4)]
    out = GatherRoIAlign(NAMES, 7, sampling_ratio=0)(feats, empty, IMAGES)
    assert out.shape == (0, 8, 7, 7)


def test_inference_and_exports_use_torchvisions_op(monkeypatch) -> None:
    import gains.models.roi_pool as roi_pool

    def fail(*args, **kwargs):
        raise AssertionError("the gathered op ran")

    monkeypatch.setattr(roi_pool, "gather_roi_align", fail)
    feats, boxes = _features(), _boxes()
    pool = GatherRoIAlign(NAMES, 7, sampling_ratio=0)
    with torch.no_grad():
        assert pool(feats, boxes, IMAGES).shape == (71, 8, 7, 7)
    plain = torchvision_pool(pool)
    assert type(plain) is MultiScaleRoIAlign
    assert (plain.featmap_names, plain.output_size, plain.sampling_ratio) == (NAMES, (7, 7), 0)
    torch.jit.script(plain)


def test_a_training_step_with_the_gathered_pools_gives_torchvisions_losses_and_gradients() -> None:
    from dataclasses import replace

    from gains.models.build import build_model
    from tests.models.test_model import TINY, sample

    images, targets = sample(3)
    results = {}
    for name in ("gather", "torchvision"):
        torch.manual_seed(0)
        model = build_model(replace(TINY, roi_pool=name), 1).train()
        assert type(model.roi_heads.box_roi_pool) is (GatherRoIAlign if name == "gather" else MultiScaleRoIAlign)
        torch.manual_seed(1)  # the same RoI sampling
        losses = model(images, targets)
        sum(losses.values()).backward()
        results[name] = ({k: v.item() for k, v in losses.items()},
                         {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    (loss_a, grad_a), (loss_b, grad_b) = results["gather"], results["torchvision"]
    assert loss_a.keys() == loss_b.keys() and "loss_ga" in loss_a
    for k in loss_a:
        assert loss_a[k] == pytest.approx(loss_b[k], rel=1e-4, abs=1e-6), k
    assert grad_a.keys() == grad_b.keys()
    for n in grad_a:
        torch.testing.assert_close(grad_a[n], grad_b[n], rtol=1e-3, atol=1e-5, msg=n)


def test_an_unknown_roi_pool_is_refused() -> None:
    from dataclasses import replace

    from gains.models.build import build_model
    from tests.models.test_model import TINY

    with pytest.raises(ValueError, match=r"model\.roi_pool must be one of"):
        build_model(replace(TINY, roi_pool="fast"), 1)
