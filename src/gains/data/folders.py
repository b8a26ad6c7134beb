"""Folder layouts -> canonical form: one-folder-per-image mask sets and label images.

- masks: ``ROOT/<name>/images/<one image file>`` (or ``ROOT/<name>/image.<ext>``) and
  ``ROOT/<name>/masks/*`` with one binary mask file per instance (PNG or TIFF; instances may overlap).
- labels: an image folder and a label folder whose files share stems; a label image holds 0 for
  background and one integer id per instance (uint8/16/32; ids need not be contiguous). 16-bit PNGs
  and TIFFs are read at full depth.
Images are copied byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from gains.core.images import IMAGE_SUFFIXES, image_size, read_image
from gains.core.masks import MaskCrop, tight_crop
from gains.data.canonical import Sample, write_dataset
from gains.errors import InputError


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def find_folder_image(folder: Path) -> Path:
    """The image of a one-folder-per-image sample: ``images/<file>`` or ``image.<ext>``."""
    if (folder / "images").is_dir():
        files = _image_files(folder / "images")
        if len(files) != 1:
            raise InputError(f"{folder / 'images'}: expected exactly one image file, found {len(files)}")
        return files[0]
    files = [p for p in _image_files(folder) if p.stem == "image"]
    if not files:
        raise InputError(f"{folder}: no images/<file> and no image.<ext>")
    return files[0]


def read_binary_mask(path: Path, shape: tuple[int, int]) -> MaskCrop:
    """A binary mask file (any two values; nonzero = inside) of the given (H, W) shape, as a tight crop."""
    m = read_image(path)
    if m.ndim == 3:
        m = m[..., 0]
    if m.shape != shape:
        raise InputError(f"{path}: mask is {m.shape[0]}x{m.shape[1]} but the image is {shape[0]}x{shape[1]}")
    values = np.unique(m)
    if values.size > 2:
        raise InputError(f"{path}: mask is not binary ({values.size} distinct values)")
    crop = tight_crop(m > 0)
    if crop is None:
        raise InputError(f"{path}: empty mask")
    return crop


def read_mask_folder(folder: str | Path, file_name: str | None = None) -> Sample:
    """One folder with an image and ``masks/*``, as a Sample of category 1 (image copied as is)."""
    folder = Path(folder)
    image = find_folder_image(folder)
    shape = image_size(image)
    mask_files = _image_files(folder / "masks") if (folder / "masks").is_dir() else []
    if not mask_files:
        raise InputError(f"{folder / 'masks'}: no mask file")
    crops = [read_binary_mask(f, shape) for f in mask_files]
    name = file_name or f"{folder.name}{image.suffix.lower()}"
    return Sample(name, None, crops, [1] * len(crops), source=image)


def convert_masks(root: str | Path, out: str | Path, category: str = "object", overwrite: bool = False) -> Path:
    """Every sub-folder of ``root`` (sorted) holding an image and ``masks/``; returns annotations.json."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise InputError(f"{root}: no sub-folders")
    return write_dataset(out, (read_mask_folder(f) for f in folders), [{"id": 1, "name": category}],
                         info={"source": f"mask folders {root}"}, overwrite=overwrite, inputs=[root])


def label_crops(label: np.ndarray, where: str) -> list[MaskCrop]:
    """Instances of a label image (0 = background), ordered by label value, as tight crops."""
    if label.ndim != 2:
        raise InputError(f"{where}: label image must be single-channel, got shape {label.shape}")
    if label.dtype.kind not in "ui":
        raise InputError(f"{where}: label image must hold integers, got {label.dtype}")
    if label.dtype.kind == "i" and label.min() < 0:
        raise InputError(f"{where}: negative label values")
    values, inverse = np.unique(label, return_inverse=True)
    dense = inverse.reshape(label.shape) + (0 if values[0] == 0 else 1)  # background -> 0, ids -> 1..n
    crops = []
    for k, sl in enumerate(ndimage.find_objects(dense), start=1):
        if sl is not None:
            crops.append(tight_crop(dense[sl] == k, sl[0].start, sl[1].start))
    return crops


def convert_labels(images_dir: str | Path, labels_dir: str | Path, out: str | Path, category: str = "object",
                   overwrite: bool = False) -> Path:
    """Images + label images with the same stems; returns annotations.json."""
    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    for d in (images_dir, labels_dir):
        if not d.is_dir():
            raise InputError(f"{d}: not a folder")
    images = _image_files(images_dir)
    if not images:
        raise InputError(f"{images_dir}: no image files")
    labels = {p.stem: p for p in _image_files(labels_dir)}

    def samples():
        for image in images:
            if image.stem not in labels:
                raise InputError(f"{labels_dir}: no label image for {image.name}")
            label = read_image(labels[image.stem])
            shape = image_size(image)
            if label.shape[:2] != shape:
                raise InputError(f"{labels[image.stem]}: label is {label.shape[0]}x{label.shape[1]} but "
                                 f"{image.name} is {shape[0]}x{shape[1]}")
            crops = label_crops(label, str(labels[image.stem]))
            yield Sample(image.name, None, crops, [1] * len(crops), source=image)

    return write_dataset(out, samples(), [{"id": 1, "name": category}],
                         info={"source": f"label images {labels_dir}"}, overwrite=overwrite,
                         inputs=[images_dir, labels_dir])
