"""``gains export DIR --to FORMAT``: a canonical dataset's ground truth (annotations.json + images/) in any
format of ``FORMATS`` that export offers, one image at a time, overlapping instances kept where the format can
hold them: label images, mask folders, Fiji ROI sets or QuPath GeoJSON (``gains.formats``)."""

from __future__ import annotations

from pathlib import Path

from gains.core.coco import CocoAnnotations, CocoImage, annotation_crop, checked_image_file, load_coco
from gains.core.images import check_input
from gains.core.masks import Instance
from gains.core.planes import label_plane
from gains.errors import InputError
from gains.formats import select
from gains.formats.result import ImageResult
from gains.outputs import staged_folder


def ground_truth(coco: CocoAnnotations, image: CocoImage, image_dir: Path) -> ImageResult:
    """One image of a dataset and its annotations (in file order, numbered by annotation id) as writers take it,
    on the plane of its file that the entry's ``"z"`` / ``"t"`` keys pick (indices only for the axes the file has:
    ``"z": 0`` on a 2-D image names no plane).

    Raises:
        InputError: a missing, unreadable or wrongly sized image file, or a malformed or empty segmentation.
    """
    file, height, width = checked_image_file(coco, image, image_dir)
    anns = coco.anns_by_image[image.id]
    instances = []
    for ann in anns:
        crop = annotation_crop(coco.path, ann, height, width)
        if crop is None:
            raise InputError(f"{coco.path}: annotation {ann['id']} (image {image.id}): empty mask (no pixel inside "
                             "the segmentation)")
        instances.append(Instance(int(ann["category_id"]), 1.0, crop))
    label = check_input(file, image.plane)[0]  # from the header: "z3" names only the plane axes the file has
    plane = label_plane(label)
    return ImageResult(instances, coco.categories, height, width, image_id=image.id, file_name=image.file_name,
                       file=file, plane=label, z=plane.z, t=plane.t, ids=[int(a["id"]) for a in anns], truth=True)


def export_dataset(folder: str | Path, to: str, out: str | Path, overwrite: bool = False) -> Path:
    """Write every image's annotations of ``folder`` into ``out`` as format ``to``, named by the image's file
    name stem (``gains.formats``: e.g. ``labels/<stem>.tif``, ``<stem>/masks/<id>.png``, ``<stem>_rois.zip``,
    ``<stem>.geojson``). The folder is built as ``out.partial`` and renamed when complete, so a failure leaves
    nothing.

    Raises:
        InputError: ``to`` is not a format export offers, ``out`` is not empty (without ``overwrite``), two
            images share a file name stem, the dataset is broken (bad JSON, missing image, malformed or empty
            mask...), or the format cannot hold an image's instances (overlaps in a label image).
    """
    module = select([to], "export")[to]
    folder, out = Path(folder), Path(out)
    coco = load_coco(folder / "annotations.json")
    stems: dict[str, int] = {}
    parts = []
    with staged_folder(out, overwrite, "export", [folder]) as tmp:
        for image in coco.images:
            stem = Path(image.file_name).stem
            if stem in stems:
                raise InputError(f"{coco.path}: images {stems[stem]} and {image.id} share the file name stem "
                                 f"{stem!r}; their outputs would collide")
            stems[stem] = image.id
            result = ground_truth(coco, image, folder / "images")
            try:
                module.write(result, tmp, stem)
            except ValueError as exc:
                raise InputError(f"{coco.path}: image {image.id}: {exc}") from exc
            if hasattr(module, "collect"):
                parts.append(module.collect(result))
        if hasattr(module, "finish"):
            module.finish(tmp, parts, coco.categories)
    return out
