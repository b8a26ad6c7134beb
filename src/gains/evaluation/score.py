"""``gains score``: a COCO results file against a COCO ground truth, every metric, no model involved.

Per category: segm/AP, segm/AP50, segm/AP75, bbox/AP (pycocotools, maxDets [1, 10, max_dets]) and the
per-image metrics of ``metrics`` averaged over the images that have ground truth or kept predictions
of the category. ``aji_gains`` keeps the top ``max_dets`` predictions by score with no threshold; the
others keep predictions with score >= ``score_thresh``. Each prediction stays its own mask, so
overlapping instances are scored right. Top-level values are means over the categories present in the
ground truth. Intersections come from pycocotools' RLE IoU (no dense N x M x H x W arrays).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from gains.atomic import atomic_write
from gains.core.checks import check_bbox
from gains.core.coco import load_coco
from gains.core.masks import segmentation_rle
from gains.errors import InputError
from gains.evaluation.coco import coco_ap
from gains.evaluation.contact import CONTACT, contact_metrics
from gains.evaluation.metrics import aji_gains, aji_kumar, aji_plus, dsb_score, pq_f1
from gains.jsonfile import read_json

PER_IMAGE = ("aji_gains", "aji", "aji_plus", "pq", "f1_50", "dsb_score", *CONTACT)
AP_KEYS = ("segm/AP", "segm/AP50", "segm/AP75", "bbox/AP")


def _to_rle(seg: Any, h: int, w: int, where: str) -> dict[str, Any]:
    """pycocotools' compressed RLE of a ground-truth or result segmentation (``segmentation_rle``).

    Raises:
        InputError: a segmentation the checks refuse (``gains.core.checks``), naming ``where``.
    """
    if isinstance(seg, dict) and isinstance(seg.get("size"), list) and seg["size"] != [h, w]:  # gains score's words
        raise InputError(f"{where}: mask size {seg['size']} differs from the image size [{h}, {w}]")
    try:
        return segmentation_rle(seg, h, w)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from exc


def load_results(path: str | Path, sizes: dict[int, tuple[int, int]], categories: set[int]) -> list[dict[str, Any]]:
    """Read and check a COCO results file (a JSON list of {image_id, category_id, segmentation, score}).

    Raises:
        InputError: unparsable file, unknown image or category, non-finite score, a segmentation or box the
            checks of ``gains.core.checks`` refuse (non-finite or far-away coordinates, a mask of the wrong size).
    """
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: results must be a JSON list")
    out = []
    for k, r in enumerate(data):
        where = f"{path}: result {k}"
        if not isinstance(r, dict) or "segmentation" not in r:
            raise InputError(f"{where}: needs image_id, category_id, segmentation and score")
        if type(r.get("image_id")) is not int or r["image_id"] not in sizes:
            raise InputError(f"{where}: image_id {r.get('image_id')!r} is not in the ground truth")
        if type(r.get("category_id")) is not int or r["category_id"] not in categories:
            raise InputError(f"{where}: category_id {r.get('category_id')!r} is not in the ground truth")
        score = r.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise InputError(f"{where}: score must be a finite number, got {score!r}")
        h, w = sizes[r["image_id"]]
        if "bbox" in r:
            try:
                check_bbox(r["bbox"], h, w)
            except ValueError as exc:
                raise InputError(f"{where}: {exc}") from exc
        out.append({**r, "rle": _to_rle(r["segmentation"], h, w, where)})
    return out


def rle_areas(rles: list[dict[str, Any]]) -> np.ndarray:
    """Pixel counts of RLEs, float64 [N]. pycocotools' ``area`` overflows on lists of 256 or more RLEs under
    numpy 2 (it sizes its output with a uint8 array), so it is called in chunks."""
    from pycocotools import mask as mask_utils

    parts = [np.asarray(mask_utils.area(rles[k : k + 200]), dtype=np.float64).reshape(-1)
             for k in range(0, len(rles), 200)]
    return np.concatenate(parts) if parts else np.zeros(0)


def _overlaps(dts: list[dict], gts: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inter [D, G], area_d [D], area_g [G]) from RLEs via pycocotools' IoU."""
    from pycocotools import mask as mask_utils

    area_d = rle_areas([d["rle"] for d in dts])
    area_g = rle_areas([g["rle"] for g in gts])
    if not dts or not gts:
        return np.zeros((len(dts), len(gts))), area_d, area_g
    iou = np.asarray(mask_utils.iou([d["rle"] for d in dts], [g["rle"] for g in gts], [0] * len(gts)))
    inter = np.rint(iou * (area_d[:, None] + area_g[None, :]) / (1.0 + iou))
    return inter, area_d, area_g


def image_metrics(dts: list[dict], gts: list[dict], score_thresh: float, max_dets: int, contact_radius: int = 2
                  ) -> dict[str, float]:
    """All per-image metrics of one image and category (NaN when both sides are empty; the contact metrics
    are NaN without a contact instance)."""
    ranked = sorted(dts, key=lambda d: -d["score"])  # stable: ties keep file order
    top = ranked[:max_dets]
    kept = [d for d in ranked if d["score"] >= score_thresh]
    out = {"aji_gains": aji_gains(*_overlaps(top, gts))}
    inter, ad, ag = _overlaps(kept, gts)
    out["aji"] = aji_kumar(inter, ad, ag)
    out["aji_plus"] = aji_plus(inter, ad, ag)
    out["pq"], out["f1_50"] = pq_f1(inter, ad, ag)
    out["dsb_score"] = dsb_score(inter, ad, ag)
    out.update(contact_metrics([d["rle"] for d in kept], [g["rle"] for g in gts], inter, ad, ag, contact_radius))
    out["n_gt"], out["n_pred"] = float(len(gts)), float(len(kept))
    return out


def score(gt_json: str | Path, results_json: str | Path, score_thresh: float = 0.5, max_dets: int = 100,
          contact_radius: int = 2) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(METRICS dict, per-image rows) of a results file against a ground truth.

    Contact metrics (``gains.evaluation.contact``) average over the images with a contact instance; a
    category without any has None there and is left out of the mean over categories.
    """
    if contact_radius < 0:
        raise InputError(f"--contact-radius must be >= 0, got {contact_radius}")
    coco = load_coco(gt_json)
    sizes = {}
    for im in coco.images:
        if im.height is None:
            raise InputError(f"{coco.path}: image {im.id} has no height/width")
        sizes[im.id] = (im.height, im.width)
    names = {c["id"]: c.get("name", str(c["id"])) for c in coco.categories}
    results = load_results(results_json, sizes, coco.category_ids)
    by_key: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in results:
        by_key.setdefault((r["image_id"], r["category_id"]), []).append(r)
    gt_by_key: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for im in coco.images:
        h, w = sizes[im.id]
        for a in coco.anns_by_image[im.id]:
            rle = _to_rle(a["segmentation"], h, w, f"{coco.path}: annotation {a['id']} (image {im.id})")
            gt_by_key.setdefault((im.id, a["category_id"]), []).append({"rle": rle})
    gt_cats = sorted({cat for _, cat in gt_by_key})
    plain = [_as_rle_result(r) for r in results]
    boxed = plain if all("bbox" in r for r in results) else _with_boxes(results)
    rows: list[dict[str, Any]] = []
    per_cat: dict[str, dict[str, float]] = {}
    for cat in gt_cats:
        values: dict[str, list[float]] = {k: [] for k in PER_IMAGE}
        for im in coco.images:
            m = image_metrics(by_key.get((im.id, cat), []), gt_by_key.get((im.id, cat), []), score_thresh, max_dets,
                              contact_radius)
            if math.isnan(m["aji_gains"]) and math.isnan(m["aji"]):
                continue  # neither ground truth nor predictions of this category here
            row = {"image_id": im.id, "file_name": im.file_name, "category": names[cat],
                   "n_gt": int(m["n_gt"]), "n_pred": int(m["n_pred"])}
            for k in PER_IMAGE:
                row[k] = m[k]
                if not math.isnan(m[k]):
                    values[k].append(m[k])
            rows.append(row)
        segm = coco_ap(gt_json, plain, "segm", max_dets, [cat])
        bbox = coco_ap(gt_json, boxed, "bbox", max_dets, [cat])
        per_cat[names[cat]] = {"segm/AP": segm["AP"], "segm/AP50": segm["AP50"], "segm/AP75": segm["AP75"],
                               "bbox/AP": bbox["AP"], **{k: float(np.mean(v)) if v else (None if k in CONTACT else 0.0)
                                                         for k, v in values.items()}}
    top = {}
    for k in (*AP_KEYS, *PER_IMAGE):
        present = [c[k] for c in per_cat.values() if c[k] is not None]
        top[k] = float(np.mean(present)) if present else (None if k in CONTACT else 0.0)
    return {**top, "score_thresh": score_thresh, "max_dets": max_dets, "contact_radius": contact_radius,
            "per_category": per_cat}, rows


def _as_rle_result(result: dict[str, Any]) -> dict[str, Any]:
    """A result for pycocotools' ``loadRes`` with its segmentation as the compressed RLE checked here
    (``loadRes`` takes no polygons for masks, and no uncompressed counts)."""
    return {k: v for k, v in result.items() if k != "rle"} | {"segmentation": result["rle"]}


def _with_boxes(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results with xywh boxes taken from their masks (for bbox AP when the file has none)."""
    from pycocotools import mask as mask_utils

    out = []
    for r in results:
        box = [float(v) for v in mask_utils.toBbox(r["rle"])]
        out.append(_as_rle_result(r) | {"bbox": box})
    return out


def write_metrics(out: str | Path, metrics: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[Path, Path]:
    """METRICS.json and ``<stem>_per_image.csv`` beside it, both atomically."""
    out = Path(out)
    atomic_write(out, lambda fh: fh.write(json.dumps(metrics, indent=1).encode()))
    buf = io.StringIO()
    fields = ["image_id", "file_name", "category", "n_gt", "n_pred", *PER_IMAGE]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    csv_path = out.with_name(out.stem + "_per_image.csv")
    atomic_write(csv_path, lambda fh: fh.write(buf.getvalue().encode()))
    return out, csv_path
