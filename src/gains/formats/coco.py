"""COCO results: ``results.json`` (every instance its own compressed RLE, overlaps kept: what ``gains score``
and napari read) and ``images.json`` (the images and categories the results refer to), one pair for a run.

The two files cover every image of the run, so this format writes nothing per image: ``collect`` gives each
image's part (under ``torchrun`` gathered from every process in image order) and ``finish`` writes the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gains.atomic import atomic_write
from gains.core.coco import result_entry
from gains.core.masks import Instance
from gains.formats.result import ImageResult

COMMANDS = ("predict",)
HELP = "COCO results.json + images.json"
Part = tuple[dict[str, Any], list[dict[str, Any]]]  # (images.json entry, result entries) of one image


def coco_results(instances: list[Instance], image_id: int, height: int, width: int) -> list[dict[str, Any]]:
    """COCO result entries of one (height, width) image's instances, in their order."""
    return [result_entry(i.mask, image_id, i.category_id, i.score, height, width) for i in instances]


def image_entry(result: ImageResult) -> dict[str, Any]:
    """The image's ``images.json`` entry: id, file_name, height, width and, for a plane of a file, its label
    (``"plane": "z3_t0"``) and its indices as a dataset names them (``"z": 3, "t": 0``: ``ImageResult.plane_keys``)."""
    return {"id": result.image_id, "file_name": result.file_name, "height": result.height, "width": result.width,
            **({"plane": result.plane} if result.plane else {}), **result.plane_keys}


def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """Nothing per image (see :func:`collect` and :func:`finish`)."""
    return []


def collect(result: ImageResult) -> Part:
    """The image's part of the run's files (plain data: it travels between processes)."""
    return image_entry(result), coco_results(list(result.instances), result.image_id, result.height, result.width)


def finish(out_dir: Path, parts: list[Part], categories: list[dict[str, Any]]) -> list[Path]:
    """Write ``results.json`` and ``images.json`` of every image's ``parts``, in image order."""
    results = [entry for _, entries in parts for entry in entries]
    doc = {"images": [image for image, _ in parts],
           "categories": [{"id": c["id"], "name": c["name"]} for c in categories]}
    atomic_write(out_dir / "results.json", lambda fh: fh.write(json.dumps(results).encode()))
    atomic_write(out_dir / "images.json", lambda fh: fh.write(json.dumps(doc).encode()))
    return [out_dir / "results.json", out_dir / "images.json"]
