"""``gains train DIR``: the layout, the choices made from the data, the refusals, and two runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from gains.cli import main
from gains.core.masks import MaskCrop, tight_crop
from gains.data.stats import dataset_stats, pair_relation
from gains.data.synth import make_sample
from gains.engine.recipe import StartingModel, choose_scale, choose_variant, detect_layout, split_files
from gains.engine.threads import auto_threads
from gains.errors import InputError
from tests.conftest import TINY, write_coco

GAINS = str(Path(sys.executable).with_name("gains"))
# the tiny model settings of the suite, less the data and the GAMM variant, which DIR decides
TINY_SETS = [x for kv in TINY if not kv.startswith(("data.synthetic", "gamm.variant")) for x in ("--set", kv)]


def _full(mask: np.ndarray | MaskCrop, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(mask, MaskCrop):
        out = np.zeros(shape, dtype=bool)
        out[mask.y0 : mask.y1, mask.x0 : mask.x1] = mask.mask
        return out
    return np.asarray(mask, dtype=bool)


def mask_folders(root: Path, n: int, size: int = 96) -> Path:
    """``n`` synthetic overlap scenes as one folder per image: a 16-bit TIFF in images/, one PNG per instance."""
    for i in range(n):
        sample = make_sample("overlap", i, size, 0)
        (root / f"s{i}" / "images").mkdir(parents=True)
        (root / f"s{i}" / "masks").mkdir()
        tifffile.imwrite(root / f"s{i}" / "images" / f"s{i}.tif", sample.image.astype(np.uint16) * 257)
        for k, m in enumerate(sample.masks):
            Image.fromarray(_full(m, sample.image.shape[:2]).astype(np.uint8) * 255).save(
                root / f"s{i}" / "masks" / f"m{k}.png")
    return root


def label_folders(root: Path, n: int, size: int = 96) -> Path:
    """``n`` synthetic touching-nuclei scenes as images/*.png + labels/*.png (16-bit label images)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        sample = make_sample("touch", i, size, 0)
        Image.fromarray(sample.image).save(root / "images" / f"s{i}.png")
        label = np.zeros(sample.image.shape[:2], dtype=np.uint16)
        for k, m in enumerate(sample.masks, start=1):
            label[_full(m, label.shape)] = k
        Image.fromarray(label).save(root / "labels" / f"s{i}.png")
    return root


def _refused(args: list[str], capsys, text: str, run: Path) -> None:
    """``gains train ARGS`` exits 2 with one line holding ``text`` and leaves no run folder."""
    assert main(["train", *args, "--out", str(run), "--quiet"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith(("INFO", "WARNING"))]
    assert len(err) == 1 and err[0].startswith("gains train: error: ") and text in err[0], err
    assert not run.exists()


# ---- the layout --------------------------------------------------------------------------------------------------

def test_layouts_are_told_apart(tmp_path: Path, small_coco: Path) -> None:
    assert detect_layout(small_coco.parent) == ("canonical", None)
    assert detect_layout(label_folders(tmp_path / "l", 2, 64)) == ("labels", tmp_path / "l" / "labels")
    assert detect_layout(mask_folders(tmp_path / "m", 2, 64)) == ("masks", None)
    (tmp_path / "l" / "masks").mkdir()  # a second label folder with the images' names: which one?
    Image.fromarray(np.ones((64, 64), dtype=np.uint8)).save(tmp_path / "l" / "masks" / "s0.png")
    with pytest.raises(InputError, match=r"ambiguous layout, holds labels \(labels/\), labels \(masks/\)"):
        detect_layout(tmp_path / "l")


def test_a_folder_of_images_only_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "d" / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(tmp_path / "d" / "images" / "a.png")
    _refused([str(tmp_path / "d")], capsys, "d: no annotations found; expected annotations.json + images/",
             tmp_path / "run")


def test_a_missing_folder_is_refused(tmp_path: Path, capsys) -> None:
    _refused([str(tmp_path / "nowhere")], capsys, "nowhere: no such folder", tmp_path / "run")


def test_a_dataset_without_annotations_is_refused(tmp_path: Path, capsys) -> None:
    write_coco(tmp_path / "d", [("a.png", 64, 64), ("b.png", 64, 64)], [])
    _refused([str(tmp_path / "d")], capsys, "train.json: no annotations, nothing to train on", tmp_path / "run")


def test_images_without_masks_are_refused(tmp_path: Path, capsys) -> None:
    root = mask_folders(tmp_path / "m", 3, 64)
    for f in (root / "s1" / "masks").iterdir():
        f.unlink()
    _refused([str(root)], capsys, "s1/masks: no mask file", tmp_path / "run")
    labels = label_folders(tmp_path / "l", 3, 64)
    (labels / "labels" / "s2.png").unlink()
    _refused([str(labels)], capsys, "no label image for s2.png", tmp_path / "run")


def test_an_unknown_starting_model_is_refused(tmp_path: Path, small_coco: Path, capsys) -> None:
    _refused([str(small_coco.parent), "--weights", "nucleii"], capsys, "unknown model 'nucleii'; shipped models:",
             tmp_path / "run")
    _refused([str(small_coco.parent), "--weights", str(tmp_path / "x.pt")], capsys, "x.pt: checkpoint not found",
             tmp_path / "run")


def test_folder_flags_and_config_exclude_each_other(tmp_path: Path, small_coco: Path, capsys) -> None:
    _refused(["--config", "synthetic_touch_cpu", "--minutes", "2"], capsys, "--minutes goes with DIR",
             tmp_path / "run")
    _refused([str(small_coco.parent), "--config", "synthetic_touch_cpu"], capsys, "give DIR or --config",
             tmp_path / "run")
    _refused([str(small_coco.parent), "--set", "data.train=x.json"], capsys, "DIR decides the data",
             tmp_path / "run")
    _refused([str(small_coco.parent), "--out", str(small_coco.parent / "run")], capsys, "lies inside the input",
             small_coco.parent / "run")


# ---- the choices ---------------------------------------------------------------------------------------------------

def _stats(overlap: int, cross: int, touch: int) -> dict:
    return {"overlap_pairs": overlap, "cross_pairs": cross, "touch_pairs": touch}


def test_the_variant_follows_the_most_frequent_kind_of_pair() -> None:
    assert choose_variant(_stats(212, 0, 14), "nuclei") == (
        "isbi", "overlapping pairs 212 (crossing 0), touching 14: variant isbi (overlap)")
    assert choose_variant(_stats(30, 20, 5), "isbi")[0] == "chrom"  # 20 crossing against 10 overlapping only
    assert choose_variant(_stats(3, 0, 40), "isbi")[0] == "nuclei"
    assert choose_variant(_stats(0, 0, 0), "nuclei") == (
        "nuclei", "overlapping pairs 0 (crossing 0), touching 0: variant nuclei (no pairs to choose by; the "
        "starting model's)")


def test_crossing_rods_are_counted_apart_from_overlapping_discs() -> None:
    rows, cols = np.mgrid[:60, :60]

    def crop(mask: np.ndarray) -> MaskCrop:
        return tight_crop(mask)

    horizontal, vertical = crop((rows >= 28) & (rows < 32) & (cols >= 5)), crop((cols >= 28) & (cols < 32))
    disc_a = crop((rows - 30) ** 2 + (cols - 25) ** 2 < 100)
    disc_b = crop((rows - 30) ** 2 + (cols - 38) ** 2 < 100)
    assert pair_relation(horizontal, vertical) == "cross"
    assert pair_relation(disc_a, disc_b) == "overlap"


def test_stats_count_crossing_pairs(tmp_path: Path) -> None:
    rod = [[5, 28, 55, 28, 55, 32, 5, 32]]  # a horizontal bar, and the same bar turned upright across it
    ann = write_coco(tmp_path, [("a.png", 60, 60)], [
        {"image_id": 1, "category_id": 1, "segmentation": rod},
        {"image_id": 1, "category_id": 1, "segmentation": [[28, 5, 32, 5, 32, 55, 28, 55]]}])
    stats = dataset_stats(ann)
    assert (stats["overlap_pairs"], stats["cross_pairs"], stats["touch_pairs"]) == (1, 1, 0)


def test_the_scale_brings_the_objects_to_the_model_size() -> None:
    from gains.config import ModelConfig

    nuclei = StartingModel("nuclei", "nuclei model", ModelConfig(object_size=19.89), "nuclei")
    scale, why = choose_scale(42.0, nuclei)
    assert scale == 0.4736  # 19.89 / 42 = 0.47357, rounded to 4 decimals as the config records it
    assert why == "objects ~42 px, nuclei model saw ~20 px: training and predicting at scale 0.474"
    assert choose_scale(42.0, nuclei, scale=0.5)[0] == 0.5
    scratch = StartingModel("none", "no starting model", None, None)
    assert choose_scale(42.0, scratch) == (1.0, "objects ~42 px, no starting model: training and predicting at "
                                                 "scale 1 (native)")


def test_a_split_is_written_into_the_run_and_the_folder_is_left_alone(tmp_path: Path) -> None:
    anns = [{"image_id": i, "category_id": 1, "segmentation": [[5, 5, 20, 5, 20, 20]]} for i in range(1, 8)]
    ann = write_coco(tmp_path / "d", [(f"{i}.png", 32, 32) for i in range(1, 8)], anns)
    before = sorted(p.name for p in ann.parent.iterdir())
    data = split_files(ann.parent, tmp_path / "run" / "data", seed=0)
    assert sorted(p.name for p in ann.parent.iterdir()) == before
    train, val = (json.loads(p.read_text())["images"] for p in (data.train, data.val))
    assert (len(train), len(val)) == (5, 2)  # floor(7 * 0.8) = 5 trained on, the other 2 held out
    assert data.images == ann.parent / "images" and data.note.startswith("validation: 2 of 7 images held out")
    from gains.data.split import split_dataset

    split_dataset(ann.parent, (6, 2, 2), seed=1)  # the folder's own split files win
    own = split_files(ann.parent, tmp_path / "run3" / "data", seed=0)
    assert (own.train, own.val, own.test) == tuple(ann.parent / f"{n}.json" for n in ("train", "val", "test"))
    assert not (tmp_path / "run3").exists()
    one = write_coco(tmp_path / "one", [("a.png", 32, 32)], anns[:1])
    single = split_files(one.parent, tmp_path / "run2" / "data", seed=0)
    assert single.train == single.val == one and "WARNING one image only" in single.note


def test_auto_threads_leave_the_busy_cores_to_their_processes() -> None:
    assert auto_threads(2, 0.1) == 2  # a quiet 2-core machine: both
    assert auto_threads(2, 1.0) == 1  # one core kept busy by another process: one thread, no barrier stalls
    assert auto_threads(2, 2.0) == 1  # never fewer than one
    assert auto_threads(16, 1.4) == 15
    assert auto_threads(16, 0.0, processes=4) == 4  # torchrun's ranks share the cores


# ---- end to end ----------------------------------------------------------------------------------------------------

def _gains(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([GAINS, *args], capture_output=True, text=True, env=env, timeout=600)


def _train_then_predict(folder: Path, run: Path, image: Path, *extra: str) -> list[str]:
    done = _gains("train", str(folder), "--minutes", "0.2", *TINY_SETS, "--set", "train.max_iters=2",
                  "--out", str(run), "--quiet", *extra)
    assert done.returncode == 0, done.stderr
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    pred = _gains("predict", str(run), str(image), "--out", str(run.parent / "pred"))
    assert pred.returncode == 0, pred.stderr
    assert f"scale {cfg['model']['test_scale']:.3g} (the model's rule" in pred.stdout + pred.stderr
    assert json.loads((run.parent / "pred" / "images.json").read_text())
    return done.stdout.splitlines()


@pytest.mark.slow
def test_a_folder_of_16_bit_tiffs_with_mask_folders_trains_and_predicts(tmp_path: Path) -> None:
    root = mask_folders(tmp_path / "mine", 5)
    lines = _train_then_predict(root, tmp_path / "run", root / "s0" / "images" / "s0.tif", "--weights", "nuclei")
    assert lines[0].startswith(f"data: {root} is one folder per image with masks/, converted into")
    assert lines[1] == "validation: 1 of 5 images held out (seed 0; no split files in " + str(root) + ")"
    assert lines[2].startswith("GAMM: overlapping pairs") and lines[2].endswith("variant isbi (overlap)")
    assert lines[3].startswith("scale: objects ~") and "nuclei model saw ~20 px" in lines[3]
    assert "crop 134 px, whole images" in lines[5]  # 96 px scenes at scale 19.89 / 14.2: smaller than 512
    assert (tmp_path / "run" / "data" / "annotations.json").is_file()


@pytest.mark.slow
def test_a_folder_of_pngs_with_label_images_trains_and_predicts(tmp_path: Path) -> None:
    root = label_folders(tmp_path / "mine", 5)
    lines = _train_then_predict(root, tmp_path / "run", root / "images" / "s1.png", "--weights", "none")
    assert lines[0].startswith(f"data: {root} is images/ + label images in labels/")
    assert lines[2].endswith("variant nuclei (touching)")
    assert lines[3].endswith("no starting model: training and predicting at scale 1 (native)")
    assert lines[-1].startswith(f"trained 2 iterations into {tmp_path / 'run'}")


def test_train_threads_sets_torchs_intra_op_threads(tmp_path: Path) -> None:
    import torch

    before = torch.get_num_threads()
    sets = [x for kv in [*TINY, "train.max_iters=1", "train.eval_period=0", "train.threads=2"] for x in ("--set", kv)]
    try:
        assert main(["train", *sets, "--out", str(tmp_path / "run"), "--quiet"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert json.loads((tmp_path / "run" / "train_summary.json").read_text())["threads"] == 2


def test_object_sizes_are_medians_per_category(tmp_path: Path) -> None:
    from gains.data.stats import object_sizes

    radii = {1: [14, 13, 9, 12, 12], 2: [4, 5]}  # cells and nuclei: the recipe scales by the nuclei, the smaller
    anns = [{"image_id": 1, "category_id": c, "segmentation": [[1, 1, 9, 1, 9, 9]], "area": float(np.pi * r * r)}
            for c, rs in radii.items() for r in rs]
    sizes = object_sizes(write_coco(tmp_path, [("a.png", 64, 64)], anns))
    assert sizes == pytest.approx({1: 24.0, 2: 9.0})  # 2 x the median radius: 2 x 12, 2 x 4.5
