"""``gains export DIR --to imagej|geojson``: a canonical dataset's ground truth as Fiji ROI sets or QuPath
GeoJSON, one file per image (``<stem>_rois.zip`` or ``<stem>.geojson``), overlapping instances kept."""

from __future__ import annotations

from pathlib import Path

from gains.core.coco import checked_image_file, load_coco
from gains.errors import InputError
from gains.formats import geojson, imagej
from gains.formats.records import records_from_annotations
from gains.outputs import staged_folder

TARGETS = ("imagej", "geojson")


def output_name(stem: str, to: str) -> str:
    """The file an image's instances go to: ``<stem>_rois.zip`` (imagej) or ``<stem>.geojson``."""
    return f"{stem}_rois.zip" if to == "imagej" else f"{stem}.geojson"


def export_outlines(folder: str | Path, to: str, out: str | Path, overwrite: bool = False,
                    object_type: str = "annotation") -> Path:
    """Write every image's annotations of ``folder`` (annotations.json + images/) into ``out``.

    Instances keep their annotation ids and file order; images without annotations get an empty file.
    ``object_type`` is the QuPath object type of the GeoJSON features (ground truth: ``annotation``).
    The folder is built as ``out.partial`` and renamed when complete, so a failure leaves nothing.

    Raises:
        InputError: ``to`` is unknown, ``out`` is not empty (without ``overwrite``), two images share a
            file name stem, or the dataset is broken (bad JSON, missing image, malformed or empty mask...).
    """
    if to not in TARGETS:
        raise InputError(f"unknown export format {to!r}; expected one of {', '.join(TARGETS)}")
    folder, out = Path(folder), Path(out)
    coco = load_coco(folder / "annotations.json")
    stems: dict[str, int] = {}
    with staged_folder(out, overwrite, "export", [folder]) as tmp:
        for image in coco.images:
            _, h, w = checked_image_file(coco, image, folder / "images")
            stem = Path(image.file_name).stem
            if stem in stems:
                raise InputError(f"{coco.path}: images {stems[stem]} and {image.id} share the file name stem "
                                 f"{stem!r}; their outputs would collide")
            stems[stem] = image.id
            records = records_from_annotations(coco.anns_by_image[image.id], h, w, coco.categories,
                                               where=str(coco.path), image_id=image.id)
            dest = tmp / output_name(stem, to)
            if to == "imagej":
                imagej.write(records, dest)
            else:
                geojson.write(records, dest, object_type=object_type, stem=stem)
    return out
