"""Canonical dataset -> label images or one-folder-per-image masks (the reverse of the converters)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from gains.atomic import atomic_write
from gains.core.coco import annotation_crop, checked_image_file, load_coco
from gains.data.stats import pair_relation
from gains.errors import InputError
from gains.imageio import encode_tiff
from gains.outputs import staged_folder


def export_dataset(folder: str | Path, to: str, out: str | Path, overwrite: bool = False) -> Path:
    """Write ``out/labels/<stem>.tif`` (+ ``out/images/``) or ``out/<stem>/{images,masks}/``.

    Label images are uint16 (uint32 beyond 65,535 instances), instance k of an image = value k in file
    order. Masks are 0/255 PNGs named ``<annotation id>.png``.

    Raises:
        InputError: ``to`` is unknown, ``out`` is not empty, or (labels) two instances overlap: a label
            image cannot hold them.
    """
    from PIL import Image

    if to not in ("labels", "masks"):
        raise InputError(f"unknown export format {to!r}; expected labels or masks")
    folder, out = Path(folder), Path(out)
    coco = load_coco(folder / "annotations.json")
    with staged_folder(out, overwrite, "export", [folder]) as tmp:
        for image in coco.images:
            src, h, w = checked_image_file(coco, image, folder / "images")
            anns = coco.anns_by_image[image.id]
            crops = [annotation_crop(coco.path, a, h, w) for a in anns]
            stem = Path(image.file_name).stem
            if to == "labels":
                for i in range(len(crops)):
                    for j in range(i + 1, len(crops)):
                        if pair_relation(crops[i], crops[j]) == "overlap":
                            raise InputError(f"{coco.path}: image {image.id}: annotations {anns[i]['id']} and "
                                             f"{anns[j]['id']} overlap; a label image cannot hold overlapping "
                                             "instances (use --to masks)")
                label = np.zeros((h, w), dtype=np.uint16 if len(crops) < 65536 else np.uint32)
                for k, c in enumerate(crops, start=1):
                    label[c.y0 : c.y1, c.x0 : c.x1][c.mask] = k
                payload = encode_tiff(label)
                atomic_write(tmp / "labels" / f"{stem}.tif", lambda fh, b=payload: fh.write(b))
                dest = tmp / "images" / Path(image.file_name).name
            else:
                for a, c in zip(anns, crops, strict=True):
                    png = Image.fromarray((c.to_dense(h, w) * 255).astype(np.uint8))
                    atomic_write(tmp / stem / "masks" / f"{a['id']}.png", lambda fh, p=png: p.save(fh, format="PNG"))
                dest = tmp / stem / "images" / Path(image.file_name).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    return out
