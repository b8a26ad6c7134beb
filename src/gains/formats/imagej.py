"""ImageJ / Fiji ROI sets: a ``.zip`` of one ``.roi`` per instance, encoded by roifile.

Open one in Fiji with File > Open (or drag it onto the ROI Manager) after opening the image. Each
instance is one ROI, named ``<id>_<category>_<score>`` (``<id>_<category>`` for ground truth) and
stroked in its category's colour; its properties (Edit > Selection > Properties, or ``Roi.getProperty``
in a macro) hold ``id``, ``category``, ``area_px`` and ``score``.

**Planes.** The ROIs of a plane of a stack carry its position, as Fiji's ROI Manager and overlays read it
(``ij.io.RoiDecoder``: a non-zero channel, slice or frame makes a hyperstack position, else the stack
position applies; positions are 1-based, 0 means every plane):

- a 2-D image: no position (0);
- a file with one plane axis, Z or T (a z-stack or a time series, with or without channels): the stack
  position ``z + 1`` or ``t + 1``. Fiji shows a plain stack's ROI on that image, and maps it to the Z (or,
  without Z, the T) of a hyperstack (a multichannel stack), so one number fits both ways Fiji may open it;
- a file with both Z and T (a hyperstack, as Fiji opens an OME or ImageJ TIFF with both): the hyperstack
  position channel 0 (every channel), slice ``z + 1``, frame ``t + 1``. A file Fiji cannot read Z and T from
  opens as a plain stack, where no single index is right: give it hyperstack metadata.

Channels never get a position: a mask holds for every channel.

Coordinates follow :mod:`gains.formats.contours`: integer pixel-edge vertices, so ImageJ's mask of each
ROI (pixels whose centre is inside) is the instance mask exactly. A single-part instance without holes
is a traced polygon, the ROI type Fiji's own Wand and Analyze Particles make from a mask. An instance
with holes or several parts (an object cut in two by another lying on top of it) is a composite
(``ShapeRoi``, even-odd filled) of all its rings: keeping only the largest part, the other choice, would
drop pixels, and its area and intensity measurements would no longer be those of the instance. Fiji's
ROI Manager measures composites like any ROI and splits one into parts with More > Split.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from roifile import ROI_OPTIONS, ROI_TYPE, ImagejRoi, roiwrite

from gains.atomic import atomic_path
from gains.formats.records import Record, check_records
from gains.formats.result import ImageResult

COMMANDS = ("predict", "export")
HELP = "Fiji ROI zip"
MOVETO, LINETO, CLOSE = 0, 1, 4  # java.awt.geom.PathIterator segment types, as ImageJ stores composites


def set_plane(roi: ImagejRoi, z: int | None = None, t: int | None = None) -> ImagejRoi:
    """Give ``roi`` the stack or hyperstack position of the plane with 0-based indices ``z`` and ``t`` (None: the
    image has no such axis), as the module docstring says; returns ``roi``."""
    roi.c_position = roi.z_position = roi.t_position = 0
    if z is not None and t is not None:
        roi.position = 0
        roi.z_position, roi.t_position = z + 1, t + 1
    else:
        index = z if z is not None else t
        roi.position = 0 if index is None else index + 1
    return roi


def to_roi(record: Record, id_width: int = 4, z: int | None = None, t: int | None = None) -> ImagejRoi:
    """The ``roifile.ImagejRoi`` of one record, on the plane ``z``, ``t`` (0-based; see the module docstring)."""
    polygons = record.polygons
    rings = [ring for polygon in polygons for ring in polygon]
    lo = np.min([r.min(axis=0) for r in rings], axis=0)
    hi = np.max([r.max(axis=0) for r in rings], axis=0)
    if len(rings) == 1:
        roi = ImagejRoi.frompoints(rings[0])  # integer coordinates; floats only beyond ImageJ's int16 range
        roi.roitype = ROI_TYPE.TRACED
        roi.options &= ROI_OPTIONS.SUB_PIXEL_RESOLUTION
    else:
        path: list[float] = []
        for ring in rings:
            path += [MOVETO, *ring[0].tolist()]
            for x, y in ring[1:].tolist():
                path += [LINETO, x, y]
            path.append(CLOSE)
        roi = ImagejRoi()
        roi.roitype = ROI_TYPE.RECT
        roi.multi_coordinates = np.asarray(path, dtype=np.float32)
        roi.shape_roi_size = len(path)
    roi.left, roi.top = int(lo[0]), int(lo[1])
    roi.right, roi.bottom = int(hi[0]), int(hi[1])  # pixel edges: the bounds are the extreme vertices
    roi.name = record.label(id_width)
    set_plane(roi, z, t)
    roi.stroke_color = bytes((255, *record.colour))  # ARGB, opaque
    props = {"id": record.id, "category": " ".join(record.category.splitlines()), "area_px": record.area}
    if record.score is not None:
        props["score"] = f"{record.score:.6g}"
    roi.props = "".join(f"{k}: {v}\n" for k, v in sorted(props.items()))  # ImageJ's Roi.getProperties() form
    return roi


def write_records(records: Sequence[Record], path: str | Path, z: int | None = None, t: int | None = None) -> Path:
    """Write ``records`` as an ImageJ ROI set ``path`` (a ``.zip``; entries ``<name>.roi`` in record order), each
    ROI on the plane ``z``, ``t`` (0-based indices; None: the image has no such axis).

    The file is written to a temporary name and renamed, so it is either complete or absent. An empty
    ``records`` gives an empty archive.

    Raises:
        ValueError: ``path`` does not end in ``.zip``, or a record is invalid (see
            :func:`gains.formats.records.check_records`).
    """
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise ValueError(f"{path}: an ImageJ ROI set is a .zip file")
    check_records(records)
    width = max(4, len(str(max((r.id for r in records), default=0))))
    rois = [to_roi(r, width, z, t) for r in records]
    with atomic_path(path) as tmp:
        roiwrite(tmp, rois, name=[roi.name for roi in rois], mode="w")
    return path


def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>_rois.zip``: one ROI per instance, named by its number (predictions: score rank; ground truth:
    annotation id), overlaps kept, on the image's plane (``result.z``, ``result.t``).

    Raises:
        ValueError: as :func:`write_records`.
    """
    return [write_records(result.records, out_dir / f"{stem}_rois.zip", result.z, result.t)]
