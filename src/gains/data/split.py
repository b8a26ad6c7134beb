"""Reproducible train/val/test splits written next to ``annotations.json``.

``split_dataset(dir, ratios=(6, 2, 2), seed=0)``: image ids are permuted with
``numpy.random.default_rng(seed)`` and cut at floor(n * r_train / sum) and floor(n * (r_train + r_val) /
sum); the same seed gives the same files. Annotation ids are kept, so a GA-map store computed on the
whole dataset serves every split (each split records the sha256 of the file it was cut from).
Presets: ``isbi2014-30-15``: images 1..30 (by numeric file name) train, 31..45 test; the challenge's
test images are not available, so val.json repeats test.json (the reference also evaluates on test).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from gains.atomic import atomic_write
from gains.errors import InputError
from gains.jsonfile import parse_json

PRESETS = ("isbi2014-30-15",)


def _subset(doc: dict[str, Any], image_ids: set[int], parent_sha: str, name: str) -> dict[str, Any]:
    info = dict(doc.get("info") or {})
    info.update({"split": name, "split_of": "annotations.json", "split_of_sha256": parent_sha})
    return {"info": info, "images": [im for im in doc["images"] if im["id"] in image_ids],
            "annotations": [a for a in doc["annotations"] if a["image_id"] in image_ids],
            "categories": doc["categories"]}


def _numeric(name: str) -> int:
    m = re.match(r"(\d+)", Path(name).stem)
    if not m:
        raise InputError(f"preset isbi2014-30-15 needs numeric file names, got {name!r}")
    return int(m.group(1))


def split_dataset(folder: str | Path, ratios: tuple[float, ...] = (6, 2, 2), seed: int = 0,
                  preset: str | None = None, out: str | Path | None = None) -> dict[str, Path]:
    """Write train.json, val.json and test.json next to ``folder/annotations.json`` (into ``out`` when given: the
    files then name their images relative to ``folder/images``); returns their paths."""
    folder = Path(folder)
    target = Path(out) if out is not None else folder
    ann = folder / "annotations.json"
    try:
        raw = ann.read_bytes()
    except OSError as exc:
        raise InputError(f"{ann}: cannot read annotations ({exc})") from exc
    doc = parse_json(raw, ann)
    sha = hashlib.sha256(raw).hexdigest()
    images = doc.get("images") or []
    if not images:
        raise InputError(f"{ann}: no images, nothing to split")
    if preset is not None:
        if preset != "isbi2014-30-15":
            raise InputError(f"unknown split preset {preset!r}; expected one of {PRESETS}")
        if len(images) != 45:
            raise InputError(f"{ann}: preset isbi2014-30-15 needs the 45 ISBI2014 training images, found {len(images)}")
        by_number = {_numeric(im["file_name"]): im["id"] for im in images}
        parts = {"train": {by_number[k] for k in range(1, 31)}, "test": {by_number[k] for k in range(31, 46)}}
        parts["val"] = parts["test"]
    else:
        if len(ratios) != 3 or not all(math.isfinite(r) and r >= 0 for r in ratios) or sum(ratios) <= 0:
            raise InputError(f"ratios must be three finite numbers >= 0, not all 0, got {ratios}")
        ids = np.asarray([im["id"] for im in images])
        order = ids[np.random.default_rng(seed).permutation(len(ids))]
        total = float(sum(ratios))
        a = int(np.floor(len(ids) * ratios[0] / total))
        b = int(np.floor(len(ids) * (ratios[0] + ratios[1]) / total))
        parts = {"train": set(order[:a].tolist()), "val": set(order[a:b].tolist()), "test": set(order[b:].tolist())}
    out = {}
    for name in ("train", "val", "test"):
        sub = _subset(doc, parts[name], sha, name)
        sub["info"].update({"seed": seed, "ratios": list(ratios)} if preset is None else {"preset": preset})
        path = target / f"{name}.json"
        atomic_write(path, lambda fh, s=sub: fh.write(json.dumps(s).encode()))
        out[name] = path
    return out
