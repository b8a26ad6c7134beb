"""The GAInS model: gradients, empty images, variants, alignment, losses, weights and state dicts."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from gains.config import ModelConfig
from gains.models.build import build_model
from gains.models.losses import crop_to_rois, ga_regression_loss, weighted_mask_loss
from gains.models.transform import GainsTransform
from gains.models.weights import load_weights

TINY = ModelConfig(backbone="resnet18", norm="gn", trainable_layers=5, min_size_train=[128], min_size_test=128,
                   max_size=192, rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100,
                   rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50, box_batch_size_per_image=64,
                   detections_per_img=20)


def sample(n: int = 2, size: int = 128, seed: int = 0) -> tuple[list[torch.Tensor], list[dict]]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, size, size, generator=g) * 0.2
    masks = torch.zeros((n, size, size), dtype=torch.uint8)
    for k in range(n):
        y, x = 20 + 40 * k, 30 + 25 * k
        masks[k, y : y + 40, x : x + 45] = 1
        image[:, y : y + 40, x : x + 45] += 0.5
    boxes = torch.tensor([[30 + 25 * k, 20 + 40 * k, 75 + 25 * k, 60 + 40 * k] for k in range(n)], dtype=torch.float32)
    ga = 1.0 + 0.5 * torch.rand((n, size, size), generator=g)
    target = {"boxes": boxes, "labels": torch.ones(n, dtype=torch.int64), "masks": masks, "ga_maps": ga,
              "image_id": torch.tensor(1)}
    return [image.clamp(0, 1)], [target]


def test_every_parameter_gets_a_gradient_in_gains_mode() -> None:
    torch.manual_seed(0)
    model = build_model(TINY, 1).train()
    images, targets = sample()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_ga", "loss_objectness",
                           "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not missing, missing


def test_a_narrower_anomaly_branch_trains_and_keeps_the_rest_of_the_model() -> None:
    torch.manual_seed(0)
    wide = build_model(TINY, 1)
    narrow = build_model(ModelConfig(**{**TINY.__dict__, "anomaly_channels": 64}), 1).train()
    shapes = {n: p.shape for n, p in narrow.named_parameters()}
    differ = sorted(n for n, p in wide.named_parameters() if shapes[n] != p.shape)
    assert differ and all(n.startswith(("roi_heads.fusion.", "roi_heads.anomaly.")) for n in differ)
    assert narrow.roi_heads.fusion.conv.out_channels == 64 and narrow.roi_heads.anomaly.deconv.out_channels == 64
    images, targets = sample()
    losses = narrow(images, targets)
    assert losses["loss_ga"].item() > 0
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in narrow.roi_heads.anomaly.parameters())
    with pytest.raises(ValueError, match="anomaly_channels"):
        build_model(ModelConfig(**{**TINY.__dict__, "anomaly_channels": 0}), 1)


def test_a_pointwise_fusion_still_fuses_both_features_and_trains_the_mask_branch_through_them() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(**{**TINY.__dict__, "fusion_kernel": 1}), 1).train()
    conv = model.roi_heads.fusion.conv
    assert conv.kernel_size == (1, 1) and conv.in_channels == 512 and conv.padding == (0, 0)
    images, targets = sample()
    losses = model(images, targets)
    assert losses["loss_ga"].item() > 0
    losses["loss_ga"].backward()  # the anomaly loss alone: it must reach the mask branch and the pooled features
    assert model.roi_heads.mask_branch.convs[0].weight.grad.abs().sum() > 0
    assert model.backbone.fpn.layer_blocks[0][0].weight.grad.abs().sum() > 0
    assert model.roi_heads.mask_branch.predictor.weight.grad is None  # the logits are not part of the fusion
    for bad in (0, 2):
        with pytest.raises(ValueError, match="fusion_kernel"):
            build_model(ModelConfig(**{**TINY.__dict__, "fusion_kernel": bad}), 1)


def test_box_coding_stays_float32_under_bf16_autocast() -> None:
    """RPN deltas and box predictions come out float32 (bf16 proposals collapse and made NaN box losses)."""
    torch.manual_seed(0)
    model = build_model(TINY, 1).train()
    seen = {}
    model.rpn.head.register_forward_hook(lambda m, i, o: seen.update(rpn=[t.dtype for part in o for t in part]))
    model.roi_heads.box_predictor.register_forward_hook(lambda m, i, o: seen.update(box=[t.dtype for t in o]))
    model.roi_heads.mask_branch.register_forward_hook(lambda m, i, o: seen.update(mask=o[0].dtype))
    images, targets = sample()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(images, targets)
    assert set(seen["rpn"]) == set(seen["box"]) == {torch.float32}
    assert seen["mask"] == torch.bfloat16  # the heads' convolutions still run in low precision
    assert all(torch.isfinite(v) for v in losses.values())


def test_image_without_instances_gives_zero_mask_and_ga_losses() -> None:
    torch.manual_seed(0)
    model = build_model(TINY, 1).train()
    image = torch.rand(3, 128, 128)
    target = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64),
              "masks": torch.zeros((0, 128, 128), dtype=torch.uint8), "ga_maps": torch.zeros((0, 128, 128))}
    losses = model([image], [target])
    assert losses["loss_mask"].item() == 0.0 and losses["loss_ga"].item() == 0.0
    sum(losses.values()).backward()  # the graph stays connected


def test_variants_differ_only_by_the_ga_parts() -> None:
    gains = {n: p.shape for n, p in build_model(TINY, 2).named_parameters()}
    base = {n: p.shape for n, p in build_model(ModelConfig(**{**TINY.__dict__, "variant": "maskrcnn"}), 2)
            .named_parameters()}
    extra = set(gains) - set(base)
    assert not set(base) - set(gains)
    assert extra and all(n.startswith(("roi_heads.fusion.", "roi_heads.anomaly.")) for n in extra)
    assert all(gains[n] == base[n] for n in base)
    images, targets = sample()
    del targets[0]["ga_maps"]  # a baseline's data carries no GA maps
    out = build_model(ModelConfig(**{**TINY.__dict__, "variant": "maskrcnn"}), 1).train()(images, targets)
    assert "loss_ga" not in out and torch.isfinite(sum(out.values()))


def test_inference_outputs_masks_and_ga_maps_in_image_frame() -> None:
    torch.manual_seed(0)
    model = build_model(TINY, 1).eval()
    image = torch.rand(3, 100, 150)
    with torch.no_grad():
        out = model([image])[0]
    k = out["boxes"].shape[0]
    assert out["masks"].shape == (k, 1, 100, 150) and out["ga_maps"].shape == (k, 1, 100, 150)
    assert out["scores"].shape == (k,) and out["labels"].shape == (k,)
    no_ga = build_model(ModelConfig(**{**TINY.__dict__, "predict_ga_maps": False}), 1).eval()
    with torch.no_grad():
        assert "ga_maps" not in no_ga([image])[0]


def test_model_transform_keeps_ga_maps_aligned_with_masks() -> None:
    tr = GainsTransform([96], 96, 1000, [0.0] * 3, [1.0] * 3).train()
    masks = torch.zeros((1, 50, 70), dtype=torch.uint8)
    masks[0, 10:30, 20:50] = 1
    target = {"boxes": torch.tensor([[20.0, 10.0, 50.0, 30.0]]), "labels": torch.ones(1, dtype=torch.int64),
              "masks": masks, "ga_maps": 1.0 + masks.float()}
    images, (out,) = tr([torch.rand(3, 50, 70)], [target])
    h, w = images.image_sizes[0]
    assert (h, w) == (96, round(70 * 96 / 50))
    assert out["masks"].shape[-2:] == out["ga_maps"].shape[-2:] == (h, w)
    inside = out["ga_maps"][0] >= 1.5
    assert (inside ^ out["masks"][0].bool()).float().mean() < 0.01
    x0, y0, x1, y1 = out["boxes"][0].tolist()
    rows, cols = torch.nonzero(out["masks"][0], as_tuple=True)
    assert abs(x0 - cols.min()) <= 1 and abs(x1 - (cols.max() + 1)) <= 1
    assert abs(y0 - rows.min()) <= 1 and abs(y1 - (rows.max() + 1)) <= 1


def test_model_transform_resizes_uint8_masks_as_nearest_exact_and_needs_no_ga_maps() -> None:
    """Masks are resized as uint8 (no float copy of the [N, H, W] stack) with the same pixels as a float
    nearest-exact resize; a baseline's target without GA maps stays without them."""
    tr = GainsTransform([64], 64, 1000, [0.0] * 3, [1.0] * 3).train()
    masks = (torch.rand((3, 50, 70), generator=torch.Generator().manual_seed(1)) > 0.6).to(torch.uint8)
    target = {"boxes": torch.tensor([[0.0, 0.0, 70.0, 50.0]] * 3), "labels": torch.ones(3, dtype=torch.int64),
              "masks": masks}
    images, (out,) = tr([torch.rand(3, 50, 70)], [target])
    want = torch.nn.functional.interpolate(masks[None].float(), size=images.image_sizes[0], mode="nearest-exact")[0]
    assert out["masks"].dtype == torch.uint8 and torch.equal(out["masks"], want.to(torch.uint8))
    assert "ga_maps" not in out


def test_gains_training_refuses_targets_without_ga_maps() -> None:
    model = build_model(TINY, 1).train()
    images, targets = sample()
    del targets[0]["ga_maps"]
    with pytest.raises(ValueError, match="ga_maps"):
        model(images, targets)


def test_loss_functions_match_hand_computation() -> None:
    logits = torch.tensor([[[[0.0, 2.0]]], [[[-1.0, 1.0]]]]).repeat(1, 2, 1, 1)  # [R=2, C=2, 1, 2]
    logits[1, 1] = torch.tensor([[3.0, -3.0]])
    labels = torch.tensor([0, 1])
    target = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])
    weight = torch.tensor([[[1.0, 2.0]], [[1.5, 1.0]]])
    bce = [-np.log(1 / (1 + np.exp(-0.0))), -np.log(1 - 1 / (1 + np.exp(-2.0))),
           -np.log(1 / (1 + np.exp(-3.0))), -np.log(1 / (1 + np.exp(3.0)))]
    want = (bce[0] * 1.0 + bce[1] * 2.0 + bce[2] * 1.5 + bce[3] * 1.0) / 4
    assert abs(float(weighted_mask_loss(logits, labels, target, weight)) - want) < 1e-6
    assert abs(float(weighted_mask_loss(logits, labels, target)) - np.mean(bce)) < 1e-6
    ga_want = ((0.0 - 1.0) ** 2 + (2.0 - 2.0) ** 2 + (3.0 - 1.5) ** 2 + (-3.0 - 1.0) ** 2) / 4
    assert abs(float(ga_regression_loss(logits, labels, weight)) - ga_want) < 1e-6
    empty = torch.zeros((0, 2, 28, 28), requires_grad=True)
    assert weighted_mask_loss(empty, torch.zeros(0, dtype=torch.int64), torch.zeros(0, 28, 28)).item() == 0.0


def test_crop_to_rois_aligned_crops_are_exact_on_a_ramp() -> None:
    # a map equal to its x coordinate at pixel centres: aligned RoIAlign samples the box's own grid
    xs = torch.arange(40, dtype=torch.float32) + 0.5
    maps = xs.expand(30, 40)[None].clone()
    crops = crop_to_rois(maps, torch.tensor([[8.0, 4.0, 24.0, 20.0]]), torch.tensor([0]), 8, aligned=True)
    want = 8.0 + (torch.arange(8) + 0.5) * 2.0  # sample points at the centres of 8 bins across x in [8, 24]
    assert torch.allclose(crops[0, 3], want, atol=1e-5)


def test_state_dict_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(TINY, 1).eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = build_model(TINY, 1).eval()
    assert load_weights(other, str(tmp_path / "m.pt")) == len(model.state_dict())
    image = torch.rand(3, 128, 128)
    with torch.no_grad():
        a, b = model([image])[0], other([image])[0]
    assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["masks"], b["masks"])


def test_torchvision_and_detectron2_backbone_weights(tmp_path: Path) -> None:
    import torchvision

    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "r18.pth")
    cfg = ModelConfig(**{**TINY.__dict__, "norm": "frozen_bn"})
    model = build_model(cfg, 1)
    n = load_weights(model, str(tmp_path / "r18.pth"), "resnet18")
    assert torch.equal(model.backbone.body.layer3[1].conv2.weight, resnet.layer3[1].conv2.weight)
    assert n > 50
    # a Caffe2/detectron2-named pickle of the same network
    blobs = {"conv1_w": resnet.conv1.weight.detach().numpy(), "res_conv1_bn_s": resnet.bn1.weight.detach().numpy(),
             "res_conv1_bn_b": resnet.bn1.bias.detach().numpy()}
    for stage in range(1, 5):
        layer = getattr(resnet, f"layer{stage}")
        for b, block in enumerate(layer):
            for br, conv, bn in (("2a", block.conv1, block.bn1), ("2b", block.conv2, block.bn2)):
                blobs[f"res{stage + 1}_{b}_branch{br}_w"] = conv.weight.detach().numpy() * 0 + stage
                blobs[f"res{stage + 1}_{b}_branch{br}_bn_s"] = bn.weight.detach().numpy()
                blobs[f"res{stage + 1}_{b}_branch{br}_bn_b"] = bn.bias.detach().numpy()
    with open(tmp_path / "R-18.pkl", "wb") as fh:
        pickle.dump({"model": blobs}, fh)
    model = build_model(cfg, 1)
    load_weights(model, str(tmp_path / "R-18.pkl"), "resnet18")
    assert torch.all(model.backbone.body.layer3[1].conv2.weight == 3)
    assert torch.all(model.backbone.body.layer3[1].bn2.running_var == 1)


def test_bad_weight_files_are_input_errors(tmp_path: Path) -> None:
    from gains.errors import InputError

    model = build_model(TINY, 1)
    (tmp_path / "t.pt").write_bytes(b"PK\x03\x04truncated")
    with pytest.raises(InputError, match="unreadable or truncated"):
        load_weights(model, str(tmp_path / "t.pt"))
    with pytest.raises(InputError, match="not found"):
        load_weights(model, str(tmp_path / "missing.pt"))
    torch.save({"foo": torch.ones(3)}, tmp_path / "odd.pt")
    with pytest.raises(InputError, match="no tensor fits"):
        load_weights(model, str(tmp_path / "odd.pt"))


def test_seeded_losses_are_reproducible_and_sane() -> None:
    """Same seed, same losses (bit for bit); at initialisation the terms sit where theory puts them."""
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_model(TINY, 1).train()
        runs.append({k: v.item() for k, v in model(*sample(seed=5)).items()})
    assert runs[0] == runs[1]
    losses = runs[0]
    # zero-initialised predictors: mask logits ~ 0 -> BCE ~ log 2 (weighted by GA in [1, 1.5], x0.75)
    assert 0.75 * np.log(2) * 0.99 < losses["loss_mask"] < 0.75 * np.log(2) * 1.5
    # anomaly logits ~ 0 against GA targets in [1, 1.5]: MSE between 1 and 2.25
    assert 1.0 <= losses["loss_ga"] <= 2.25
    assert abs(losses["loss_objectness"] - np.log(2)) < 0.1  # RPN starts near chance
