"""run_gamm end to end: equal to image_maps, resumable, parallel, atomic, strict on bad input."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gains.core.coco import load_coco
from gains.errors import InputError
from gains.gamm import GammParams, GammStore, image_maps, run_gamm
from gains.gamm import pipeline as pipeline_mod
from gains.gamm.prepare import prepare_image
from tests.conftest import BAD_INPUTS, corrupt_dataset, disc_polygon, write_coco

ISBI = GammParams.for_variant("isbi", target_category=1)


def reference(ann_path: Path, params: GammParams) -> dict[int, np.ndarray]:
    coco = load_coco(ann_path)
    out = {}
    for image in coco.images:
        h, w, inst, _ = prepare_image(coco, image, ann_path.parent / "images")
        for i, m in zip(inst, image_maps(inst, h, w, params), strict=True):
            out[i.ann_id] = m.to_dense()
    return out


def test_store_equals_direct_maps_and_export_is_raw_float64(small_coco: Path, tmp_path: Path) -> None:
    images = small_coco.parent / "images"
    run = run_gamm(small_coco, images, ISBI, out=tmp_path / "store", export_npy=tmp_path / "npy", raw=True,
                   precision="float32", progress=False)
    assert (run.n_images, run.n_maps, run.n_computed_images) == (2, 6, 2)
    want = reference(small_coco, ISBI)
    store = GammStore(tmp_path / "store")
    assert len(store) == 6
    for ann_id, m in want.items():
        np.testing.assert_allclose(store.load(ann_id), m, atol=1e-6)
        exported = np.load(tmp_path / "npy" / f"{ann_id}.npy")
        assert exported.dtype == np.float64 and exported.shape == (64, 80)
        np.testing.assert_array_equal(exported, m)
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*gains-partial"))


def test_default_mode_sanitises_and_counts(tmp_path: Path) -> None:
    anns = [{"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(20, 20, 8)]},
            {"image_id": 2, "category_id": 1, "segmentation": [disc_polygon(20, 20, 8)]},
            {"image_id": 2, "category_id": 1, "segmentation": [disc_polygon(20, 35, 8)]}]
    ann = write_coco(tmp_path / "d", [("a.png", 40, 50), ("b.png", 40, 50)], anns)
    run = run_gamm(ann, ann.parent / "images", ISBI, out=tmp_path / "s", progress=False)
    assert run.n_nan == 1
    store = GammStore(tmp_path / "s")
    assert (store.load(1) == 1.0).all()
    assert store.manifest["sanitised_nan_maps"] == 1
    raw = run_gamm(ann, ann.parent / "images", ISBI, out=tmp_path / "r", raw=True, progress=False)
    assert raw.n_nan == 0 and np.isnan(GammStore(tmp_path / "r").load(1)).all()


def test_resume_after_interruption_skips_finished_images(small_coco: Path, tmp_path: Path, monkeypatch) -> None:
    images = small_coco.parent / "images"
    calls: list[int] = []
    original = pipeline_mod._process_image

    def flaky(image):
        calls.append(image.id)
        if image.id == 2 and calls.count(2) == 1:
            raise KeyboardInterrupt
        return original(image)

    monkeypatch.setattr(pipeline_mod, "_process_image", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_gamm(small_coco, images, ISBI, out=tmp_path / "store", progress=False)
    assert (tmp_path / "store.partial" / "maps" / "1.npz").exists()
    assert not (tmp_path / "store").exists()
    run = run_gamm(small_coco, images, ISBI, out=tmp_path / "store", progress=False)
    assert calls == [1, 2, 2] and run.n_computed_images == 1 and run.n_maps == 6
    fresh = run_gamm(small_coco, images, ISBI, out=tmp_path / "fresh", progress=False)
    a, b = GammStore(tmp_path / "store"), GammStore(fresh.store)
    for ann_id in range(1, 7):
        np.testing.assert_array_equal(a.load(ann_id), b.load(ann_id))
    again = run_gamm(small_coco, images, ISBI, out=tmp_path / "store", progress=False)
    assert again.up_to_date


def test_stale_store_is_refused_then_overwritten(small_coco: Path, tmp_path: Path) -> None:
    images = small_coco.parent / "images"
    run_gamm(small_coco, images, ISBI, out=tmp_path / "s", progress=False)
    other = GammParams.for_variant("isbi", target_category=1, window_size=7)
    with pytest.raises(InputError, match="params differs"):
        run_gamm(small_coco, images, other, out=tmp_path / "s", progress=False)
    GammStore(tmp_path / "s").check(pipeline_mod.StoreKey(
        ISBI.to_dict(), load_coco(small_coco).sha256, False, "float16", pipeline_mod.__version__))
    run = run_gamm(small_coco, images, other, out=tmp_path / "s", overwrite=True, progress=False)
    assert GammStore(tmp_path / "s").manifest["params"]["window_size"] == 7 and run.n_maps == 6


def test_two_workers_equal_one(small_coco: Path, tmp_path: Path) -> None:
    images = small_coco.parent / "images"
    run_gamm(small_coco, images, ISBI, out=tmp_path / "one", progress=False)
    run_gamm(small_coco, images, ISBI, out=tmp_path / "two", workers=2, progress=False)
    for ann_id in range(1, 7):
        one, two = GammStore(tmp_path / "one"), GammStore(tmp_path / "two")
        np.testing.assert_array_equal(one.load(ann_id), two.load(ann_id))


def test_target_category_defaults_to_smallest_id(small_coco: Path, tmp_path: Path) -> None:
    run = run_gamm(small_coco, small_coco.parent / "images", GammParams.for_variant("isbi"), out=tmp_path / "s",
                   progress=False)
    assert run.params.target_category == 1
    with pytest.raises(InputError, match="target category 9"):
        run_gamm(small_coco, small_coco.parent / "images", GammParams.for_variant("isbi", target_category=9),
                 out=tmp_path / "t", progress=False)


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_fails_with_one_line_and_leaves_nothing(case: str, small_coco: Path, tmp_path: Path) -> None:
    work = tmp_path / "copy"
    shutil.copytree(small_coco.parent, work)
    ann = work / "annotations.json"
    msg = corrupt_dataset(case, ann)
    with pytest.raises(InputError) as err:
        run_gamm(ann, work / "images", ISBI, out=tmp_path / "store", export_npy=tmp_path / "npy", progress=False)
    text = str(err.value)
    assert msg in text and "\n" not in text
    assert str(ann) in text or "b.png" in text
    assert not (tmp_path / "store").exists() and not (tmp_path / "store.partial").exists()
    assert not (tmp_path / "npy").exists() or not any((tmp_path / "npy").iterdir())


def test_skip_invalid_counts_and_keeps_the_rest(small_coco: Path, tmp_path: Path) -> None:
    doc = json.loads(small_coco.read_text())
    doc["annotations"][4]["segmentation"] = [[1, 1, 2, 2, 3, 3]]
    small_coco.write_text(json.dumps(doc))
    run = run_gamm(small_coco, small_coco.parent / "images", ISBI, out=tmp_path / "s", skip_invalid=True,
                   progress=False)
    assert len(run.skipped) == 1 and "annotation 5" in run.skipped[0]
    assert run.n_maps == 5 and 5 not in GammStore(tmp_path / "s")


def test_zero_maps_keep_stores_zero_maps_and_counts_none(tmp_path: Path) -> None:
    anns = [{"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(20, 20, 8)]},
            {"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(20, 35, 8)]},
            {"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(20, 110, 5)]}]
    ann = write_coco(tmp_path / "d", [("a.png", 40, 130)], anns)
    nuclei = GammParams.for_variant("nuclei", target_category=1)
    ones = run_gamm(ann, ann.parent / "images", nuclei, out=tmp_path / "ones", progress=False)
    assert ones.n_zero == 1 and (GammStore(tmp_path / "ones").load(3) == 1.0).all()
    keep = replace(nuclei, zero_maps="keep")
    kept = run_gamm(ann, ann.parent / "images", keep, out=tmp_path / "keep", progress=False)
    assert kept.n_zero == 0 and (GammStore(tmp_path / "keep").load(3) == 0.0).all()
    np.testing.assert_array_equal(GammStore(tmp_path / "keep").load(1), GammStore(tmp_path / "ones").load(1))


def test_every_category_accepts_any_target_and_maps_the_second_category(tmp_path: Path) -> None:
    anns = [{"image_id": 1, "category_id": c, "segmentation": [disc_polygon(20, x, 8)]}
            for c, x in ((1, 20), (1, 35), (2, 70), (2, 85))]
    ann = write_coco(tmp_path / "d", [("a.png", 40, 110)], anns)
    params = GammParams.for_variant("isbi", target_category=7, every_category=True)
    run_gamm(ann, ann.parent / "images", params, out=tmp_path / "s", progress=False)
    store = GammStore(tmp_path / "s")
    assert store.load(3).max() > 1.1 and store.load(1).max() > 1.1
    with pytest.raises(InputError, match="target category 7"):
        run_gamm(ann, ann.parent / "images", replace(params, every_category=False), out=tmp_path / "t",
                 progress=False)
