"""``gains predict``: segment image files or folders and write the asked-for outputs."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from gains.atomic import atomic_write
from gains.engine.distributed import resolve_device
from gains.errors import InputError
from gains.formats import geojson, imagej
from gains.formats.records import records_from_instances
from gains.inference.loading import load_model, resolve_scale
from gains.inference.predictor import Instance, Predictor
from gains.inference.writers import coco_results, write_ga, write_labels, write_overlay
from gains.inputs import PlaneChoice, check_input, read_planes
from gains.intensity import Normalisation
from gains.sysinfo import peak_rss_mib

FORMATS = ("coco", "labels", "overlay", "ga", "imagej", "geojson")
SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def input_files(inputs: list[str | Path]) -> list[Path]:
    """Image files named directly or found (not recursively) in named folders, in sorted order."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    if not files:
        raise InputError("no image found in " + ", ".join(map(str, inputs)))
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        raise InputError("two inputs share a file name stem; outputs would collide")
    return files


def predict_files(checkpoint: str | Path, inputs: list[str | Path], out: str | Path, formats: list[str],
                  tile: int | None = 1024, overlap: int = 128, device: str = "auto", scale: float | None = None,
                  score_thresh: float | None = None, overrides: list[str] | None = None,
                  progress: bool = True, object_size: float | None = None,
                  choice: PlaneChoice | None = None) -> dict[str, Any]:
    """Predict every input (the planes and channels ``choice`` picks, see ``gains.inputs``); returns a summary
    (images = planes predicted, instances, peak memory in MiB, the scale used).

    ``scale`` / ``object_size``: see ``resolve_scale`` (default: the model's own scale rule).

    Raises:
        InputError: bad inputs or checkpoint; an output folder this call created is removed again.
    """
    bad = sorted(set(formats) - set(FORMATS))
    if bad:
        raise InputError(f"unknown output format {bad[0]!r}; choose from {', '.join(FORMATS)}")
    files = input_files(inputs)
    choice = choice or PlaneChoice()
    stems = [f"{f.stem}_{label}" if label else f.stem for f in files for label in check_input(f, choice)]
    clash = next((stem for stem, n in Counter(stems).items() if n > 1), None)  # every header read before the model
    if clash is not None:
        raise InputError(f"{clash}: two inputs (or planes) give the same output name; rename one")
    torch_device = resolve_device(device)
    model, cfg, categories = load_model(checkpoint, overrides, torch_device)
    thresh = score_thresh if score_thresh is not None else cfg.eval.score_thresh
    norm = Normalisation.of_model(cfg.model)
    scale, scale_note = resolve_scale(cfg.model, scale, object_size)
    predictor = Predictor(model, categories, torch_device, tile=tile, overlap=overlap, scale=scale,
                          score_thresh=thresh, normalisation=norm)
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        total = _predict_into(out, files, predictor, norm, formats, categories, progress, choice)
    except BaseException:
        if created:  # a failed run leaves nothing behind (files of an existing folder are kept)
            shutil.rmtree(out, ignore_errors=True)
        raise
    return {"images": len(stems), "instances": total, "peak_mib": peak_rss_mib(), "out": str(out),
            "scale": scale, "scale_note": scale_note}


def _predict_into(out: Path, files: list[Path], predictor: Predictor, norm: Normalisation, formats: list[str],
                  categories: list[dict[str, Any]], progress: bool, choice: PlaneChoice) -> int:
    """Predict and write every file into ``out``; returns the number of instances."""
    from tqdm import tqdm

    results, images, total = [], [], 0
    planes = ((file, plane) for file in files for plane in read_planes(file, choice))
    for image_id, (file, plane) in enumerate(tqdm(planes, unit="img", desc="predict", disable=not progress), start=1):
        pixels = plane.pixels
        stem = f"{file.stem}_{plane.label}" if plane.label else file.stem  # outputs named <stem>_z3_t0...
        h, w = pixels.shape[:2]
        try:
            instances = predictor.predict(pixels)
        except ValueError as exc:
            raise InputError(f"{file}{' ' + plane.label if plane.label else ''}: {exc}") from exc
        total += len(instances)
        images.append({"id": image_id, "file_name": str(file), "height": h, "width": w,
                       **({"plane": plane.label} if plane.label else {})})
        if "coco" in formats:
            results += coco_results(instances, image_id, h, w)
        if "labels" in formats:
            write_labels(out, stem, instances, h, w)
        if "overlay" in formats:
            write_overlay(out / f"{stem}_overlay.png", pixels, instances, norm)
        if "ga" in formats:
            write_ga(out, stem, instances, h, w)
        if "imagej" in formats or "geojson" in formats:
            _write_outlines(out, stem, instances, categories, formats)
    if "coco" in formats:
        doc = {"images": images, "categories": [{"id": c["id"], "name": c["name"]} for c in categories]}
        atomic_write(out / "results.json", lambda fh: fh.write(json.dumps(results).encode()))
        atomic_write(out / "images.json", lambda fh: fh.write(json.dumps(doc).encode()))
    return total


def _write_outlines(out: Path, stem: str, instances: list[Instance], categories: list[dict[str, Any]],
                    formats: list[str]) -> None:
    """``<stem>_rois.zip`` (Fiji ROI set) and/or ``<stem>.geojson`` (QuPath detections), overlaps kept."""
    records = records_from_instances(instances, categories)  # traced once, shared by both writers
    if "imagej" in formats:
        imagej.write(records, out / f"{stem}_rois.zip")
    if "geojson" in formats:
        geojson.write(records, out / f"{stem}.geojson", object_type="detection", stem=stem)
