"""Shared fixtures: the read-only ../shared folder (skipped cleanly when absent) and tiny datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GAINS_SHARED", ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or a pytest skip when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def disc_polygon(cy: float, cx: float, r: float, n: int = 48) -> list[float]:
    """A COCO polygon (flat x, y list) approximating a disc."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)]).ravel().round(2).tolist()


def write_coco(folder: Path, images: list[tuple[str, int, int]], anns: list[dict], categories=None) -> Path:
    """Write blank PNG images and a COCO JSON; ``anns`` need image_id/category_id/segmentation (ids added)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    doc_images = []
    for i, (name, h, w) in enumerate(images, start=1):
        Image.fromarray(np.zeros((h, w), dtype=np.uint8)).save(folder / "images" / name)
        doc_images.append({"id": i, "file_name": name, "height": h, "width": w})
    doc_anns = [{"id": k, "iscrowd": 0, **a} for k, a in enumerate(anns, start=1) if "id" not in a]
    doc_anns += [a for a in anns if "id" in a]
    cats = categories or [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}]
    path = folder / "annotations.json"
    path.write_text(json.dumps({"images": doc_images, "annotations": doc_anns, "categories": cats}))
    return path


# A tiny training setup: synthetic touching nuclei, ResNet-18/GroupNorm, 96 px (seconds per iteration on a CPU).
TINY = ["data.synthetic=touch", "data.synthetic_train=4", "data.synthetic_val=2", "data.synthetic_size=96",
        "model.backbone=resnet18", "model.norm=gn", "model.trainable_layers=5", "model.min_size_train=[96]",
        "model.min_size_test=96", "model.max_size=128", "model.rpn_pre_nms_top_n_train=100",
        "model.rpn_post_nms_top_n_train=50", "model.rpn_pre_nms_top_n_test=50", "model.rpn_post_nms_top_n_test=30",
        "model.box_batch_size_per_image=32", "model.detections_per_img=20", "gamm.variant=nuclei",
        "train.device=cpu", "train.batch_size=2", "train.lr=0.01", "train.warmup_iters=2", "train.steps=[3]",
        "train.clip_grad_norm=10.0", "data.rot90=0.5", "data.jitter=true"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A one-iteration training run folder (config, metrics, checkpoints, synthetic data)."""
    from gains.cli import main

    out = tmp_path_factory.mktemp("run") / "run"
    args = ["train", *[x for kv in [*TINY, "train.max_iters=1", "train.eval_period=0"] for x in ("--set", kv)],
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    return out


@pytest.fixture
def small_coco(tmp_path: Path) -> Path:
    """Two 64x80 images: three overlapping discs + a nucleus, and two touching discs."""
    anns = [
        {"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(30, 30, 14)]},
        {"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(32, 48, 13)]},
        {"image_id": 1, "category_id": 1, "segmentation": [disc_polygon(20, 40, 9)]},
        {"image_id": 1, "category_id": 2, "segmentation": [disc_polygon(30, 28, 4)]},
        {"image_id": 2, "category_id": 1, "segmentation": [disc_polygon(30, 25, 12)]},
        {"image_id": 2, "category_id": 1, "segmentation": [disc_polygon(30, 49, 12)]},
    ]
    return write_coco(tmp_path / "ds", [("a.png", 64, 80), ("b.png", 64, 80)], anns)


BAD_INPUTS = ["missing image", "unreadable image", "size mismatch", "bad json", "degenerate polygon",
              "malformed polygon", "empty mask", "duplicate id", "unknown category", "missing image entry",
              "path escape"]


def corrupt_dataset(case: str, ann: Path) -> str:
    """Break a copy of the small dataset; returns the text the error must contain."""
    doc = json.loads(ann.read_text())
    images = ann.parent / "images"
    if case == "missing image":
        (images / "b.png").unlink()
        return "b.png: image file not found"
    if case == "unreadable image":
        (images / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
        return "b.png: unreadable image"
    if case == "size mismatch":
        Image.fromarray(np.zeros((30, 30), dtype=np.uint8)).save(images / "b.png")
        return "image 2:"
    if case == "bad json":
        ann.write_text("{not json")
        return "not valid JSON"
    if case == "degenerate polygon":
        doc["annotations"][4]["segmentation"] = [[1, 1, 2, 2, 3, 3]]
        msg = "annotation 5 (image 2): degenerate polygon"
    elif case == "malformed polygon":
        doc["annotations"][4]["segmentation"] = [[1, 1, 2]]
        msg = "annotation 5 (image 2): polygon needs"
    elif case == "empty mask":
        doc["annotations"][4]["segmentation"] = [[200, 200, 210, 200, 210, 210]]
        msg = "annotation 5 (image 2): empty mask"
    elif case == "duplicate id":
        doc["annotations"][4]["id"] = 1
        msg = "annotation 1: duplicate annotation id"
    elif case == "unknown category":
        doc["annotations"][4]["category_id"] = 7
        msg = "annotation 5: unknown category_id 7"
    elif case == "missing image entry":
        doc["annotations"][4]["image_id"] = 9
        msg = "annotation 5: image_id 9 is not in 'images'"
    elif case == "path escape":
        doc["images"][1]["file_name"] = "../../etc/passwd"
        msg = "escapes the image folder"
    else:
        raise AssertionError(case)
    ann.write_text(json.dumps(doc))
    return msg
