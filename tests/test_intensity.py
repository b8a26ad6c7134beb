"""Input normalisation (gains.intensity): percentile, dtype and fixed modes, channels, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gains.config import config_from_dict, load_config, saved_config
from gains.data.dataset import image_to_tensor
from gains.intensity import DEFAULT, LEGACY, Normalisation


def twelve_bit_image(seed: int = 0) -> np.ndarray:
    """A 12-bit brightfield-like image in uint16: background ~94, bright blobs up to 4095."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:96, :128]
    img = 94 + rng.normal(0, 4, (96, 128))
    for _ in range(6):
        cy, cx, r = rng.uniform(10, 86), rng.uniform(10, 118), rng.uniform(5, 12)
        img += 3800 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    return np.clip(img, 80, 4095).astype(np.uint16)


def test_twelve_bit_and_its_eight_bit_stretch_give_the_same_input() -> None:
    raw = twelve_bit_image()
    lo, hi = np.percentile(raw, [1, 99.8])
    eight = np.round(np.clip((raw - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    a, b = image_to_tensor(raw), image_to_tensor(eight)
    assert a.shape == b.shape == (3, 96, 128)
    assert float((a - b).abs().max()) <= 1.0 / 255 + 1e-6
    assert float(a.min()) == 0.0 and float(a.max()) == 1.0
    # today's behaviour on the same image: almost black, which the percentile mode exists to avoid
    legacy = image_to_tensor(raw, LEGACY)
    assert float(legacy.max()) < 0.07 and float(np.median(legacy.numpy())) < 0.03


def test_dtype_mode_reproduces_the_old_tensors_exactly() -> None:
    rng = np.random.default_rng(1)
    cases = [rng.integers(0, 256, (7, 9), dtype=np.uint8), rng.integers(0, 4096, (7, 9, 3)).astype(np.uint16),
             rng.integers(-5, 100, (7, 9)).astype(np.int16), rng.uniform(-0.5, 1.5, (7, 9, 4))]
    for pixels in cases:
        img = pixels[..., None] if pixels.ndim == 2 else pixels
        if img.dtype.kind in "ui":
            old = img.astype(np.float32) / float(np.iinfo(img.dtype).max)
        else:
            old = np.clip(img.astype(np.float32), 0.0, 1.0)
        old = np.repeat(old, 3, axis=-1) if old.shape[-1] == 1 else old[..., :3]
        assert torch.equal(image_to_tensor(pixels, LEGACY), torch.from_numpy(old.transpose(2, 0, 1).copy()))


def test_percentile_is_per_channel_and_float_images_behave_like_integers() -> None:
    rng = np.random.default_rng(2)
    rgb = np.stack([rng.uniform(0, 10, (32, 32)), rng.uniform(1000, 5000, (32, 32)),
                    rng.uniform(-1, 1, (32, 32))], axis=-1)
    out = DEFAULT(rgb)
    for c in range(3):
        lo, hi = np.percentile(rgb[..., c], [1, 99.8])
        expect = np.clip((rgb[..., c] - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(out[..., c], expect, atol=1e-6)
    two = DEFAULT(rgb[..., :2])  # two channels reach the network as (c0, c1, c0)
    np.testing.assert_array_equal(two[..., 2], two[..., 0])


def test_fixed_range_maps_the_same_raw_value_to_the_same_input_in_every_image() -> None:
    norm = Normalisation("fixed", value_range=(100.0, 1100.0))
    a = np.array([[100, 600], [1100, 5000]], dtype=np.uint16)
    b = np.array([[600, 0]], dtype=np.uint16)
    np.testing.assert_allclose(norm(a)[..., 0], [[0.0, 0.5], [1.0, 1.0]])
    assert norm(b)[0, 0, 0] == pytest.approx(0.5) and norm(b)[0, 1, 0] == 0.0


def test_constant_and_sparse_images_stay_finite() -> None:
    for mode in ("percentile", "dtype"):
        out = Normalisation(mode)(np.full((8, 8), 7, dtype=np.uint16))
        assert np.all(np.isfinite(out))
    assert np.all(DEFAULT(np.full((8, 8), 3.5)) == 0.0)
    sparse = np.zeros((50, 50), dtype=np.uint16)  # 1 bright pixel in 2500: both percentiles are 0
    sparse[3, 4] = 900
    out = DEFAULT(sparse)
    assert out[3, 4, 0] == 1.0 and out.sum() == 3.0


def test_non_finite_pixels_and_bad_settings_are_refused() -> None:
    img = np.ones((4, 4), dtype=np.float32)
    img[1, 2] = np.nan
    for mode in ("percentile", "dtype"):
        with pytest.raises(ValueError, match="1 non-finite pixel"):
            Normalisation(mode)(img)
    with pytest.raises(ValueError, match="unknown input normalisation 'zscore'"):
        Normalisation("zscore")
    with pytest.raises(ValueError, match="needs input_range"):
        Normalisation("fixed")
    with pytest.raises(ValueError, match="0 <= low < high <= 100"):
        Normalisation(percentiles=(99.0, 1.0))


def test_tiles_share_the_statistics_of_the_whole_image() -> None:
    raw = twelve_bit_image(3)
    scaling = DEFAULT.fit(raw)
    whole = DEFAULT.apply(raw, scaling)
    np.testing.assert_array_equal(DEFAULT.apply(raw[10:50, 20:90], scaling), whole[10:50, 20:90])


def test_new_configs_default_to_percentile_and_old_saved_ones_keep_dtype() -> None:
    assert load_config().model.input_norm == "percentile"
    assert load_config().model.input_percentiles == [1.0, 99.8]
    old = {"model": {"variant": "gains", "backbone": "resnet18"}}
    assert saved_config(old).model.input_norm == "dtype"
    assert "input_norm" not in old["model"]  # the caller's dict is left alone
    assert saved_config({"model": {"input_norm": "fixed", "input_range": [0, 4095]}}).model.input_range == [0, 4095]
    cfg = config_from_dict({"model": {"input_norm": "fixed", "input_range": [0.0, 4095.0]}})
    assert Normalisation.of_model(cfg.model) == Normalisation("fixed", value_range=(0.0, 4095.0))
