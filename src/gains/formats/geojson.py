"""QuPath-compatible GeoJSON: a FeatureCollection with one Polygon or MultiPolygon feature per instance.

QuPath (0.4 or later) imports the file with File > Import objects from file, or when
it is dragged onto an open image. Each feature is::

    {"type": "Feature", "id": "<UUID>",
     "geometry": {"type": "Polygon" | "MultiPolygon", "coordinates": ..., "plane": {"c": -1, "z": Z, "t": T}},
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

``plane`` puts the objects of a plane of a z-stack or time series on it: QuPath's ``ImagePlane`` (0-based Z and
T; ``c`` -1, QuPath's default, for objects of every channel), read from and written into the geometry object as
QuPath's own GeoJSON does (``ROITypeAdapters``). A 2-D image's features have no ``plane``: QuPath then uses its
default plane (c -1, z 0, t 0), the same as writing one.
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


def qupath_plane(z: int | None = None, t: int | None = None) -> dict[str, int] | None:
    """QuPath's ``plane`` of the plane with 0-based indices ``z``, ``t`` (None: the image has no such axis), or
    None for a 2-D image (see the module docstring)."""
    if z is None and t is None:
        return None
    return {"c": -1, "z": z or 0, "t": t or 0}


def geometry(record: Record, plane: dict[str, int] | None = None) -> dict[str, Any]:
    """The GeoJSON geometry of one record: Polygon for one part, MultiPolygon for several; with QuPath's
    ``plane`` (:func:`qupath_plane`) when given."""
    polygons = [[_ring(r) for r in polygon] for polygon in record.polygons]
    kind, coordinates = ("Polygon", polygons[0]) if len(polygons) == 1 else ("MultiPolygon", polygons)
    return {"type": kind, "coordinates": coordinates, **({"plane": plane} if plane is not None else {})}


def feature_id(record: Record, stem: str) -> str:
    """A UUID (version 5) of the image stem, the record's id and score, and its mask."""
    m = record.mask
    digest = hashlib.sha1(m.mask.tobytes() + repr(m.mask.shape).encode()).hexdigest()
    return str(uuid.uuid5(_NAMESPACE, f"{stem}|{record.id}|{record.score}|{m.y0},{m.x0}|{digest}"))


def feature(record: Record, object_type: str = "detection", stem: str = "", id_width: int = 4,
            plane: dict[str, int] | None = None) -> dict[str, Any]:
    """One QuPath feature (see the module docstring), on QuPath's ``plane`` when given."""
    measurements: dict[str, float] = {"id": int(record.id), "area_px": record.area}
    if record.score is not None:
        measurements["score"] = float(record.score)
    return {
        "type": "Feature",
        "id": feature_id(record, stem),
        "geometry": geometry(record, plane),
        "properties": {
            "objectType": object_type,
            "name": record.label(id_width),
            "classification": {"name": record.category, "color": list(record.colour)},
            "measurements": measurements,
        },
    }


def _checked(records: Sequence[Record], object_type: str) -> int:
    """The zero-padded width of the records' ids in feature names, once the records and type are checked.

    Raises:
        ValueError: as :func:`feature_collection`.
    """
    if object_type not in OBJECT_TYPES:
        raise ValueError(f"object type must be one of {', '.join(OBJECT_TYPES)}, got {object_type!r}")
    check_records(records)
    return max(4, len(str(max((r.id for r in records), default=0))))


def feature_collection(records: Sequence[Record], object_type: str = "detection", stem: str = "",
                       plane: dict[str, int] | None = None) -> dict[str, Any]:
    """The FeatureCollection of ``records``, in their order, every feature on QuPath's ``plane`` when given.

    Raises:
        ValueError: ``object_type`` is not ``detection`` or ``annotation``, or a record is invalid (see
            :func:`gains.formats.records.check_records`).
    """
    width = _checked(records, object_type)
    return {"type": "FeatureCollection",
            "features": [feature(r, object_type, stem, width, plane) for r in records]}


def write_records(records: Sequence[Record], path: str | Path, object_type: str = "detection",
                  stem: str | None = None, plane: dict[str, int] | None = None) -> Path:
    """Write ``records`` as a GeoJSON FeatureCollection to ``path``, one feature at a time into a temporary file
    renamed when complete (memory: one feature, not the document).

    Args:
        records: the instances of one image.
        path: the output file, usually ``<stem>.geojson``.
        object_type: QuPath object type, ``detection`` (default) or ``annotation``.
        stem: the image's name, mixed into the feature ids; default: the file name less ``.geojson``.
        plane: QuPath's ``plane`` of every feature (:func:`qupath_plane`); None: none (a 2-D image).

    Raises:
        ValueError: as :func:`feature_collection`.
    """
    path = Path(path)
    stem = path.stem if stem is None else stem
    width = _checked(records, object_type)  # before anything is written

    def dump(fh: Any) -> None:  # feature by feature: the bytes of json.dumps(feature_collection(...)), compact
        fh.write(b'{"type":"FeatureCollection","features":[')
        for k, record in enumerate(records):
            text = json.dumps(feature(record, object_type, stem, width, plane), separators=(",", ":"))
            fh.write((("," if k else "") + text).encode())
        fh.write(b"]}")

    atomic_write(path, dump)
    return path


def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>.geojson``: predictions as QuPath detections, ground truth as annotations, overlaps kept, on the
    image's plane (``result.z``, ``result.t``).

    Raises:
        ValueError: as :func:`feature_collection`.
    """
    object_type = "annotation" if result.truth else "detection"
    return [write_records(result.records, out_dir / f"{stem}.geojson", object_type=object_type, stem=stem,
                          plane=qupath_plane(result.z, result.t))]
