"""QuPath-compatible GeoJSON: a FeatureCollection with one Polygon or MultiPolygon feature per instance.

QuPath (0.4 or later) imports the file with File > Import objects from file, or when
it is dragged onto an open image. Each feature is::

    {"type": "Feature", "id": "<UUID>",
     "geometry": {"type": "Polygon" | "MultiPolygon", "coordinates": ...},
     "properties": {"objectType": "detection" | "annotation", "name": "<id>_<category>_<score>",
                    "classification": {"name": "<category>", "color": [r, g, b]},
                    "measurements": {"id": ..., "area_px": ..., "score": ...}}}

Predictions are written as detections (QuPath's type for the many objects a detector makes: light,
not editable) and ground truth as annotations (editable), unless asked otherwise. The id is a
name-based UUID of the image stem and the instance (its id, score and pixels), so writing the same
instances again gives the same ids and other instances different ones. Coordinates are image pixels,
x then y, along pixel edges (:mod:`gains.formats.contours`): QuPath's own convention, so each object
covers exactly its instance's pixels. Exterior rings are counter-clockwise and holes clockwise with
the y axis up (RFC 7946's right-hand rule); a single-part instance is a Polygon, a multi-part one a
MultiPolygon, its largest part first.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gains.atomic import atomic_write
from gains.formats.records import Record, check_records
from gains.formats.result import ImageResult

COMMANDS = ("predict", "export")
HELP = "QuPath GeoJSON"
OBJECT_TYPES = ("detection", "annotation")
_NAMESPACE = uuid.UUID("6c1d3f0e-5b7a-4e4f-9a57-0a2c8d1b9e31")  # fixed: ids depend on the content only


def _ring(ring: np.ndarray) -> list[list[int]]:
    pts = ring.tolist()
    return [*pts, pts[0]]  # GeoJSON closes rings by repeating the first position


def geometry(record: Record) -> dict[str, Any]:
    """The GeoJSON geometry of one record: Polygon for one part, MultiPolygon for several."""
    polygons = [[_ring(r) for r in polygon] for polygon in record.polygons]
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": polygons[0]}
    return {"type": "MultiPolygon", "coordinates": polygons}


def feature_id(record: Record, stem: str) -> str:
    """A UUID (version 5) of the image stem, the record's id and score, and its mask."""
    m = record.mask
    digest = hashlib.sha1(m.mask.tobytes() + repr(m.mask.shape).encode()).hexdigest()
    return str(uuid.uuid5(_NAMESPACE, f"{stem}|{record.id}|{record.score}|{m.y0},{m.x0}|{digest}"))


def feature(record: Record, object_type: str = "detection", stem: str = "", id_width: int = 4) -> dict[str, Any]:
    """One QuPath feature (see the module docstring)."""
    measurements: dict[str, float] = {"id": int(record.id), "area_px": record.area}
    if record.score is not None:
        measurements["score"] = float(record.score)
    return {
        "type": "Feature",
        "id": feature_id(record, stem),
        "geometry": geometry(record),
        "properties": {
            "objectType": object_type,
            "name": record.label(id_width),
            "classification": {"name": record.category, "color": list(record.colour)},
            "measurements": measurements,
        },
    }


def feature_collection(records: Sequence[Record], object_type: str = "detection", stem: str = "") -> dict[str, Any]:
    """The FeatureCollection of ``records``, in their order.

    Raises:
        ValueError: ``object_type`` is not ``detection`` or ``annotation``, or a record is invalid (see
            :func:`gains.formats.records.check_records`).
    """
    if object_type not in OBJECT_TYPES:
        raise ValueError(f"object type must be one of {', '.join(OBJECT_TYPES)}, got {object_type!r}")
    check_records(records)
    width = max(4, len(str(max((r.id for r in records), default=0))))
    return {"type": "FeatureCollection",
            "features": [feature(r, object_type, stem, width) for r in records]}


def write_records(records: Sequence[Record], path: str | Path, object_type: str = "detection",
                  stem: str | None = None) -> Path:
    """Write ``records`` as a GeoJSON FeatureCollection to ``path`` (written whole, then renamed).

    Args:
        records: the instances of one image.
        path: the output file, usually ``<stem>.geojson``.
        object_type: QuPath object type, ``detection`` (default) or ``annotation``.
        stem: the image's name, mixed into the feature ids; default: the file name less ``.geojson``.

    Raises:
        ValueError: as :func:`feature_collection`.
    """
    path = Path(path)
    doc = feature_collection(records, object_type, path.stem if stem is None else stem)
    payload = json.dumps(doc, separators=(",", ":")).encode()
    atomic_write(path, lambda fh: fh.write(payload))
    return path


def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>.geojson``: predictions as QuPath detections, ground truth as annotations, overlaps kept.

    Raises:
        ValueError: as :func:`feature_collection`.
    """
    object_type = "annotation" if result.truth else "detection"
    return [write_records(result.records, out_dir / f"{stem}.geojson", object_type=object_type, stem=stem)]
