"""Contact-region metrics, pinned by hand-computed cases (touch, overlap, no contact, unmatched, categories)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from gains.evaluation.contact import contact_metrics, contact_zone
from gains.evaluation.score import _overlaps, score

H, W = 10, 12


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def rle(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def metrics(dts: list[np.ndarray], gts: list[np.ndarray], radius: int) -> dict[str, float]:
    d, g = [{"rle": rle(m)} for m in dts], [{"rle": rle(m)} for m in gts]
    inter, ad, ag = _overlaps(d, g)
    return contact_metrics([x["rle"] for x in d], [x["rle"] for x in g], inter, ad, ag, radius)


A, B = box(2, 5, 1, 4), box(2, 5, 4, 7)  # two 3x3 squares touching along a column


def test_touching_pair_zone_and_scores() -> None:
    zone, touching = contact_zone([rle(A), rle(B)], H, W, 0)
    expect = np.zeros((H, W), dtype=bool)
    expect[2:5, 3:5] = True  # A's right column and B's left column
    assert np.array_equal(zone, expect) and touching == [True, True]
    zone1, _ = contact_zone([rle(A), rle(B)], H, W, 1)
    assert np.array_equal(zone1, box(1, 6, 2, 6))  # dilated by a 3x3 square
    # A found exactly, B missed: contact_iou (1 + 0) / 2, recall 1 / 2
    assert metrics([A], [A, B], 0) == {"contact_iou": 0.5, "contact_recall50": 0.5}
    # A found without its contact column (IoU 6/9 > 0.5, matched) scores 0 in the zone
    assert metrics([A & ~box(0, H, 3, 4)], [A, B], 0) == {"contact_iou": 0.0, "contact_recall50": 0.5}
    # with r = 1 the zone holds 6 pixels of A (columns 2, 3): a prediction of A's columns 1-2 only
    # (IoU 6/9) shares 3 of them; union in the zone 6
    m = metrics([A & ~box(0, H, 3, 4), B], [A, B], 1)
    assert m["contact_recall50"] == 1.0 and math.isclose(m["contact_iou"], (3 / 6 + 1.0) / 2)


def test_overlapping_pair_counts_the_overlap_for_both() -> None:
    a, b = box(0, 4, 0, 4), box(2, 6, 2, 6)  # 4x4 squares sharing a 2x2 block
    zone, touching = contact_zone([rle(a), rle(b)], H, W, 0)
    expect = np.zeros((H, W), dtype=bool)
    expect[2:4, 2:4] = True  # overlap
    expect[1, 2:4] = expect[2:4, 1] = True  # a's pixels with a 4-neighbour in b
    expect[4, 2:4] = expect[2:4, 4] = True  # b's pixels with a 4-neighbour in a
    assert np.array_equal(zone, expect) and touching == [True, True]
    assert metrics([a, b], [a, b], 0) == {"contact_iou": 1.0, "contact_recall50": 1.0}


def test_no_contact_instance_is_left_out() -> None:
    far = box(7, 10, 8, 11)
    assert all(math.isnan(v) for v in metrics([A], [A, far], 2).values())
    assert all(math.isnan(v) for v in metrics([A], [A], 2).values())
    _, touching = contact_zone([rle(A), rle(B), rle(far)], H, W, 2)
    assert touching == [True, True, False]  # the lone square is no contact instance


def test_score_averages_contact_images_and_categories(tmp_path: Path) -> None:
    def ann(k: int, image: int, cat: int, m: np.ndarray) -> dict:
        r = rle(m)
        return {"id": k, "image_id": image, "category_id": cat, "iscrowd": 0, "area": int(m.sum()),
                "bbox": [float(v) for v in mask_utils.toBbox(r)], "segmentation": {"size": r["size"],
                                                                                 "counts": r["counts"].decode()}}

    far = box(7, 10, 8, 11)
    gt = {"images": [{"id": i, "file_name": f"{i}.png", "height": H, "width": W} for i in (1, 2)],
          "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}],
          "annotations": [ann(1, 1, 1, A), ann(2, 1, 1, B), ann(3, 2, 1, A), ann(4, 2, 1, far),
                          ann(5, 1, 2, far)]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    res = [{**ann(0, 1, 1, A), "score": 0.9}, {**ann(0, 2, 1, A), "score": 0.9}, {**ann(0, 1, 2, far), "score": 0.8}]
    (tmp_path / "res.json").write_text(json.dumps(res))
    metrics_, rows = score(tmp_path / "gt.json", tmp_path / "res.json", contact_radius=0)
    cell = metrics_["per_category"]["cell"]
    assert cell["contact_iou"] == 0.5 and cell["contact_recall50"] == 0.5  # image 2 has no contact: left out
    assert metrics_["per_category"]["nucleus"]["contact_iou"] is None  # no contact anywhere in this category
    assert metrics_["contact_iou"] == 0.5 and metrics_["contact_radius"] == 0  # mean over categories with one
    row2 = next(r for r in rows if r["image_id"] == 2 and r["category"] == "cell")
    assert math.isnan(row2["contact_iou"])
