"""Behaviour of GA maps beyond the golden cases: ranges, neutral maps, anchoring, variants."""

from __future__ import annotations

import numpy as np
import pytest

from gains.core.masks import tight_crop
from gains.gamm import GammParams, InstanceInput, image_maps
from gains.gamm.nuclei import interaction_groups


def disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.hypot(yy - cy, xx - cx) < r


def inputs(masks: list[np.ndarray], cats: list[int] | None = None) -> list[InstanceInput]:
    out = []
    for k, m in enumerate(masks):
        crop = tight_crop(m)
        bbox = (float(crop.x0), float(crop.y0), float(crop.x1 - crop.x0), float(crop.y1 - crop.y0))
        out.append(InstanceInput(k + 1, (cats or [1] * len(masks))[k], crop, bbox))
    return out


H, W = 60, 80
OVERLAP = [disc(H, W, 30, 30, 14), disc(H, W, 30, 46, 14)]


@pytest.mark.parametrize("variant", ["isbi", "chrom", "nuclei"])
def test_maps_lie_in_range_and_light_up_where_instances_meet(variant: str) -> None:
    params = GammParams.for_variant(variant, target_category=1)
    maps = [m.to_dense() for m in image_maps(inputs(OVERLAP), H, W, params)]
    meet = OVERLAP[0] & OVERLAP[1]
    far = disc(H, W, 30, 20, 3)  # deep inside instance 0, far from instance 1
    for m in maps:
        assert np.isfinite(m).all()
        assert m.min() >= 1.0 - 1e-12 and m.max() <= 1.0 + params.ga_factor + 1e-9
        assert np.isclose(m.max(), 1.0 + params.ga_factor / 2, atol=params.ga_factor / 2)
    assert maps[0][meet].mean() > maps[0][far].mean()
    assert (maps[0][:, -5:] == 1.0).all()  # nothing reaches the right border


def test_non_target_instances_get_ones_and_lone_target_gives_nan_everywhere() -> None:
    params = GammParams.for_variant("isbi", target_category=1)
    maps = image_maps(inputs(OVERLAP, cats=[1, 2]), H, W, params)
    assert all(m.is_nan for m in maps)  # one target instance: np.mean([]) poisons every map
    maps = image_maps(inputs([*OVERLAP, disc(H, W, 10, 70, 5)], cats=[1, 1, 2]), H, W, params)
    assert not maps[0].is_nan and not maps[1].is_nan
    assert (maps[2].to_dense() == 1.0).all()
    assert maps[0].sanitised() is maps[0]
    nan_map = image_maps(inputs(OVERLAP[:1]), H, W, params)[0]
    assert nan_map.is_nan and (nan_map.sanitised().to_dense() == 1.0).all()


def test_separated_instances_stay_near_one() -> None:
    masks = [disc(H, W, 20, 15, 8), disc(H, W, 40, 62, 8)]
    maps = image_maps(inputs(masks), H, W, GammParams.for_variant("isbi", target_category=1))
    for m in maps:
        assert np.abs(m.to_dense() - 1.0).max() < 1e-6


def test_nuclei_isolated_annotation_gets_zero_map_and_sanitises_to_ones() -> None:
    w = 130
    masks = [disc(H, w, 30, 30, 14), disc(H, w, 30, 46, 14), disc(H, w, 30, 110, 5)]
    maps = image_maps(inputs(masks), H, w, GammParams.for_variant("nuclei", target_category=1))
    assert maps[2].is_zero and (maps[2].to_dense() == 0.0).all()
    assert (maps[2].sanitised().to_dense() == 1.0).all()
    assert not maps[0].is_zero


def test_interaction_groups_rule() -> None:
    boxes = [(10, 10, 10, 10), (25, 10, 10, 10), (12, 12, 4, 4), (80, 80, 5, 5), (36, 10, 5, 5)]
    # 0 and 1 intersect once expanded by 3; 2 lies inside 0 (containment => no interaction, although
    # they overlap); 3 is far; 1 and 4 touch after expansion (35 + 3 >= 36 - 3).
    groups = interaction_groups(boxes, 3)
    assert groups == [[1], [0, 4], [], [], [1]]
    assert interaction_groups([(0, 0, 4, 4), (0, 0, 4, 4)], 2) == [[], []]  # equal boxes contain each other


def test_center_anchor_moves_the_map_down_right_by_half_a_window() -> None:
    def centre_of_mass(m: np.ndarray) -> np.ndarray:
        wts = m - 1.0
        return np.array([(wts.sum(axis=1) * np.arange(H)).sum(), (wts.sum(axis=0) * np.arange(W)).sum()]) / wts.sum()

    for variant in ("isbi", "nuclei"):
        top = GammParams.for_variant(variant, target_category=1, overlap_hl=0.0)
        mid = GammParams.for_variant(variant, target_category=1, overlap_hl=0.0, anchor="center")
        a = image_maps(inputs(OVERLAP), H, W, top)[0].to_dense()
        b = image_maps(inputs(OVERLAP), H, W, mid)[0].to_dense()
        shift = centre_of_mass(b) - centre_of_mass(a)
        half = top.window_size // 2
        assert np.all(shift > 0.5 * half) and np.all(shift < top.window_size), (variant, shift)


@pytest.mark.parametrize("offset", [0, 2])
def test_paint_is_the_reference_raster_overwrite(offset: int) -> None:
    """offset 0 reproduces writing D[a] into window a in raster order; offset ws//2 centres it."""
    from gains.gamm.fields import build_geometry
    from gains.gamm.kernels import paint

    h, w, ws = 20, 24, 5
    mask = disc(h, w, 10, 12, 4)
    geo = build_geometry(0, 1, tight_crop(mask), h, w, ws)
    d = np.random.default_rng(0).uniform(0.1, 1.0, geo.count.shape) * (geo.count > 0)
    full_d = np.zeros((h - ws + 1, w - ws + 1))
    full_d[geo.fy0 : geo.fy0 + d.shape[0], geo.fx0 : geo.fx0 + d.shape[1]] = d
    want = np.zeros((h, w))
    if offset == 0:
        for i in range(h - ws + 1):
            for j in range(w - ws + 1):
                want[i : i + ws, j : j + ws] = full_d[i, j]
    else:
        for r in range(h):
            for c in range(w):
                want[r, c] = full_d[min(max(r - offset, 0), h - ws), min(max(c - offset, 0), w - ws)]
    y0, x0, crop = paint(d, geo, h, w, ws, offset)
    got = np.zeros((h, w))
    got[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
    np.testing.assert_array_equal(got, want)


def test_overlap_highlight_raises_the_overlap_region() -> None:
    lo = image_maps(inputs(OVERLAP), H, W, GammParams.for_variant("chrom", target_category=1, overlap_hl=0.0))
    hi = image_maps(inputs(OVERLAP), H, W, GammParams.for_variant("chrom", target_category=1, overlap_hl=0.5))
    meet = OVERLAP[0] & OVERLAP[1]
    assert hi[0].to_dense()[meet].mean() > lo[0].to_dense()[meet].mean() + 0.05


def test_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="variant"):
        GammParams(variant="nope")
    with pytest.raises(ValueError, match="window_size"):
        GammParams(window_size=1)
    with pytest.raises(ValueError, match="ga_factor"):
        GammParams(ga_factor=0)
    with pytest.raises(ValueError, match="smaller than"):
        image_maps(inputs([disc(4, 4, 2, 2, 1.5)]), 4, 4, GammParams.for_variant("isbi", target_category=1))
    assert GammParams.for_variant("nuclei").window_size == 8
    assert GammParams.for_variant("chrom", ga_factor=0.9).tag == "chrom_ws5_f0.9_ol0.3"


@pytest.mark.parametrize("variant", ["isbi", "nuclei"])
def test_every_category_gives_each_category_the_maps_of_its_own_target_pass(variant: str) -> None:
    w = 160
    masks = [disc(H, w, 30, 30, 14), disc(H, w, 30, 46, 14), disc(H, w, 30, 100, 12), disc(H, w, 30, 114, 12)]
    insts = inputs(masks, cats=[1, 1, 2, 2])
    base = GammParams.for_variant(variant)
    got = image_maps(insts, H, w, GammParams.for_variant(variant, every_category=True))
    by_target = {c: image_maps(insts, H, w, GammParams.for_variant(variant, target_category=c)) for c in (1, 2)}
    for j, c in enumerate([1, 1, 2, 2]):
        np.testing.assert_array_equal(got[j].to_dense(), by_target[c][j].to_dense())
    # the reference lights up only its target category; every_category lights up the second pair too
    assert all((m.to_dense() == 1.0).all() for m in by_target[1][2:])
    assert all(m.to_dense().max() > 1.0 + base.ga_factor / 4 for m in got)


def test_zero_maps_keep_survives_sanitising_and_nan_still_becomes_ones() -> None:
    w = 130
    masks = [disc(H, w, 30, 30, 14), disc(H, w, 30, 46, 14), disc(H, w, 30, 110, 5)]
    maps = image_maps(inputs(masks), H, w, GammParams.for_variant("nuclei", target_category=1, zero_maps="keep"))
    assert maps[2].is_zero and (maps[2].sanitised(keep_zero=True).to_dense() == 0.0).all()
    nan_map = image_maps(inputs(OVERLAP[:1]), H, W, GammParams.for_variant("isbi", target_category=1))[0]
    assert (nan_map.sanitised(keep_zero=True).to_dense() == 1.0).all()


def test_new_fields_stay_out_of_the_dict_at_their_reference_values_and_name_the_tag() -> None:
    ref = GammParams.for_variant("nuclei", target_category=1)
    assert "every_category" not in ref.to_dict() and "zero_maps" not in ref.to_dict()
    changed = GammParams.for_variant("nuclei", target_category=1, every_category=True, zero_maps="keep")
    assert changed.to_dict()["every_category"] is True and changed.to_dict()["zero_maps"] == "keep"
    assert changed.tag == "nuclei_ws8_f0.8_ol0.1_allcat_zero" and ref.tag == "nuclei_ws8_f0.8_ol0.1"
    with pytest.raises(ValueError, match="zero_maps"):
        GammParams(zero_maps="zeros")
