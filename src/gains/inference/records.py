"""What a ``gains predict`` run has done, image by image: the records that make it resumable, and its index.

Every predicted image (plane) leaves ``.gains-records/<stem>.json`` in the output folder once all of its files
are written: its record (id, instance count, the files written, each whole-run format's part) with what it was
made from: the input's path, size and modification time, and the run's settings (checkpoint and its time
stamp, prediction options, plane choice, formats). ``--resume`` skips an image whose record matches all of
these and reuses its record, so a killed run goes on where it stopped, on one process, under torchrun or on
Dask alike; anything changed and the image is predicted again. A run ends with ``index.json``: every image,
its files and instance count, in image order (the whole-run formats, e.g. ``results.json``, beside it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gains.atomic import atomic_write

RECORDS = ".gains-records"
INDEX = "index.json"


def settings_key(checkpoint: str | Path, stamp: int, options: Any, choice: Any, formats: Sequence[str]) -> str:
    """A short hash of everything that decides an image's outputs besides the image itself (``repr`` of the
    frozen ``PredictOptions`` and ``PlaneChoice``; the checkpoint with its modification time)."""
    text = repr((str(checkpoint), stamp, options, choice, list(formats)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(path: Path) -> list[int]:
    """(size, modification time in ns) of an input file; for a folder (Zarr), those of the folder and of its
    metadata files, so rewriting the array's metadata counts as a change."""
    if not path.is_dir():
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    parts = [path.stat().st_mtime_ns]
    for item in sorted(p for p in path.iterdir() if p.is_file()):
        st = item.stat()
        parts += [st.st_size, st.st_mtime_ns]
    return parts


class Records:
    """The records of one output folder (module docstring); ``settings`` is this run's ``settings_key``."""

    def __init__(self, out: Path, settings: str) -> None:
        self.folder, self.settings = Path(out) / RECORDS, settings

    def _path(self, stem: str) -> Path:
        return self.folder / f"{stem}.json"

    def done(self, stem: str, file: Path, label: str, image_id: int) -> dict[str, Any] | None:
        """The stored record of image ``stem`` when it was made from this file, plane, id and settings; else None."""
        try:
            doc = json.loads(self._path(stem).read_text())
        except (OSError, ValueError):
            return None
        same = (isinstance(doc, dict) and doc.get("settings") == self.settings and doc.get("input") == str(file)
                and doc.get("plane") == label and doc.get("fingerprint") == fingerprint(file)
                and isinstance(doc.get("record"), dict) and doc["record"].get("id") == image_id)
        return doc["record"] if same else None

    def save(self, stem: str, file: Path, label: str, record: dict[str, Any]) -> None:
        """Store image ``stem``'s record (call it after every file of the image is written)."""
        self.folder.mkdir(exist_ok=True)
        doc = {"input": str(file), "plane": label, "fingerprint": fingerprint(file), "settings": self.settings,
               "record": record}
        payload = json.dumps(doc).encode()
        atomic_write(self._path(stem), lambda fh: fh.write(payload))


def write_index(out: Path, records: Sequence[dict[str, Any]], engine: str, skipped: int) -> Path:
    """``index.json``: the run's images in id order (id, file name, plane, instances, files written), the
    engine that ran it and how many images a resumed run took from earlier records."""
    images = [{key: r[key] for key in ("id", "file_name", "plane", "instances", "files")} for r in records]
    doc = {"engine": engine, "images": images, "instances": sum(r["instances"] for r in records),
           "resumed_images": skipped}
    payload = json.dumps(doc, indent=1).encode()
    atomic_write(out / INDEX, lambda fh: fh.write(payload))
    return out / INDEX
