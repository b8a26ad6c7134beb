"""One mask PNG per instance, in the folder-per-image layout the mask converter reads back (DSB2018's):
``<stem>/masks/<id>.png`` (0 or 255, the image's size) beside a copy of the image in ``<stem>/images/``.
Overlapping instances keep all their pixels. Ground truth only (``gains export --to masks``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gains.atomic import atomic_write
from gains.formats.overlay import png_bytes
from gains.formats.result import ImageResult

COMMANDS = ("export",)
HELP = "one mask PNG per instance"


def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>/masks/<id>.png`` per instance (id: the instance's number) and ``<stem>/images/<image>``."""
    written = []
    for number, inst in zip(result.numbers, result.instances, strict=True):
        payload = png_bytes((inst.mask.to_dense(result.height, result.width) * 255).astype(np.uint8))
        path = out_dir / stem / "masks" / f"{number}.png"
        atomic_write(path, lambda fh, b=payload: fh.write(b))
        written.append(path)
    return [*written, result.copy_image(out_dir / stem / "images")]
