"""ISBI 2014 overlapping cervical cells (training set) -> the canonical form.

Ground truth ``isbi_train_GT.mat`` (MATLAB v5): ``train_Cytoplasm`` (45 x 1 cells, entry i a (n_i x 1)
cell array of 512 x 512 binary cytoplasm masks that overlap) and ``train_Nuclei`` (45 x 1, one binary
map of all nuclei). Image i + 1 (``train_images/<i+1>.tif``) matches row i. Category 1 ``cell``: one
instance per cytoplasm mask, every pixel kept (they overlap); category 2 ``nucleus``: 8-connected
components of the nuclei map. Images are copied byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from gains.core.images import image_size
from gains.core.masks import tight_crop
from gains.data.canonical import Sample, write_dataset
from gains.errors import InputError

CATEGORIES = [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}]


def load_ground_truth(gt_mat: str | Path) -> tuple[list[list[np.ndarray]], list[np.ndarray]]:
    """(cytoplasm masks per image, nuclei map per image) from the challenge .mat file."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(gt_mat))
    except Exception as exc:
        raise InputError(f"{gt_mat}: cannot read MATLAB file ({exc})") from exc
    for key in ("train_Cytoplasm", "train_Nuclei"):
        if key not in mat:
            raise InputError(f"{gt_mat}: no '{key}' variable")
    cells = [[np.asarray(c[0]).astype(bool) for c in entry[0]] for entry in mat["train_Cytoplasm"]]
    nuclei = [np.asarray(entry[0]).astype(bool) for entry in mat["train_Nuclei"]]
    if len(cells) != len(nuclei):
        raise InputError(f"{gt_mat}: {len(cells)} cytoplasm entries but {len(nuclei)} nuclei maps")
    return cells, nuclei


def convert_isbi2014(images_dir: str | Path, gt_mat: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Convert the training set; returns the new annotations.json.

    Raises:
        InputError: a missing image, a mask of another size than its image, an empty cytoplasm mask.
    """
    images_dir = Path(images_dir)
    cells, nuclei = load_ground_truth(gt_mat)
    files = []
    for i in range(len(cells)):
        matches = sorted(images_dir.glob(f"{i + 1}.tif*"))
        if not matches:
            raise InputError(f"{images_dir}: no image {i + 1}.tif for ground-truth row {i}")
        files.append(matches[0])

    def samples():
        for i, file in enumerate(files):
            h, w = image_size(file)
            crops = []
            for j, m in enumerate(cells[i]):
                if m.shape != (h, w):
                    raise InputError(f"{gt_mat}: cytoplasm {j} of image {file.name} is {m.shape}, image is {h}x{w}")
                crop = tight_crop(m)
                if crop is None:
                    raise InputError(f"{gt_mat}: cytoplasm {j} of image {file.name} is empty")
                crops.append(crop)
            labels, n = ndimage.label(nuclei[i], structure=np.ones((3, 3), dtype=bool))
            objects = ndimage.find_objects(labels)
            for k, sl in enumerate(objects, start=1):
                crops.append(tight_crop(labels[sl] == k, sl[0].start, sl[1].start))
            yield Sample(file.name, None, crops, [1] * len(cells[i]) + [2] * n, source=file)

    return write_dataset(out, samples(), CATEGORIES, info={"source": f"ISBI2014 train {gt_mat}"}, overwrite=overwrite,
                         inputs=[images_dir, gt_mat])
