"""Kaggle DSB2018 folders -> the canonical form.

Layout: ``<root>/<ImageId>/images/<ImageId>.png`` (RGBA, alpha dropped) and
``<root>/<ImageId>/masks/*.png`` (one binary 0/255 PNG per nucleus, image resolution). Category 1
``nucleus``. Images are taken in sorted id order, masks in sorted file-name order.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from gains.core.images import read_image
from gains.data.canonical import Sample, write_dataset
from gains.data.folders import read_binary_mask
from gains.errors import InputError

CATEGORIES = [{"id": 1, "name": "nucleus"}]


def read_subset(path: str | Path) -> list[str]:
    """Image ids listed one per line (blank lines and ``#`` comments ignored)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read subset list ({exc.strerror})") from exc
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def read_sample(folder: str | Path) -> Sample:
    """One DSB2018 image folder as a Sample: RGB uint8 image (alpha dropped), tight mask crops.

    Raises:
        InputError: missing image, no masks, a mask of another size, an empty or non-binary mask.
    """
    folder = Path(folder)
    image_id = folder.name
    image = read_image(folder / "images" / f"{image_id}.png")  # alpha dropped
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    mask_files = sorted((folder / "masks").glob("*.png"))
    if not mask_files:
        raise InputError(f"{folder / 'masks'}: no mask PNG")
    crops = [read_binary_mask(f, image.shape[:2]) for f in mask_files]
    return Sample(f"{image_id}.png", image, crops, [1] * len(crops))


def convert_dsb2018(root: str | Path, out: str | Path, subset: str | Path | None = None, workers: int = 1,
                    overwrite: bool = False, progress: bool = True) -> Path:
    """Convert a DSB2018 stage1 folder (optionally only the ids of a subset file); returns annotations.json."""
    from tqdm import tqdm

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    ids = sorted(p.name for p in root.iterdir() if (p / "images").is_dir())
    if subset is not None:
        wanted = read_subset(subset)
        missing = sorted(set(wanted) - set(ids))
        if missing:
            raise InputError(f"{subset}: image id {missing[0]} is not a folder of {root}")
        ids = [i for i in ids if i in set(wanted)]
    if not ids:
        raise InputError(f"{root}: no <id>/images/<id>.png folders")
    folders = [root / i for i in ids]
    bar = tqdm(total=len(folders), unit="img", desc="dsb2018", disable=not progress, dynamic_ncols=True)

    def samples():
        if workers <= 1:
            for f in folders:
                yield read_sample(f)
                bar.update(1)
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for sample in pool.map(read_sample, folders, chunksize=4):
                yield sample
                bar.update(1)

    try:
        return write_dataset(out, samples(), CATEGORIES, info={"source": f"DSB2018 {root}"}, overwrite=overwrite,
                             inputs=[root, subset])
    finally:
        bar.close()
