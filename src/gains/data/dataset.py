"""The torch Dataset over a canonical (or any COCO) file: images, masks, boxes and GA maps.

``InstanceDataset(annotations, ...)[i]`` returns ``(image, target)`` in torchvision's detection form
(see ``transforms`` for the contract) with ``ga_maps`` float32 [N, H, W]: from a GA-map store when
one matches the annotations and parameters, else computed on the fly with GAMM and cached on disk
(the cache folder name holds a hash of the annotations, parameters and package version, so a stale
cache is never read). Without GAMM parameters the targets carry no ``ga_maps`` (a baseline trains
without them; building all-ones stacks cost memory and time). Category ids map to contiguous
labels 1..C in sorted id order (``category_to_label`` / ``label_to_category``). With ``crops=True``
masks and GA maps stay ``CropStack``s, which the model's transform makes dense at its input size. With a
``patch`` sampler (``gains.data.patch``) each item is one window of its image at the network size; the image's
whole-image targets (masks and GA maps as crops) and intensity statistics are then kept in memory per image
(up to ``KEPT_IMAGES``), so a sample costs what its window holds, not what the image holds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gains import __version__
from gains.atomic import atomic_write
from gains.core.coco import CocoAnnotations, load_coco, read_coco_image
from gains.core.masks import segmentation_to_crop
from gains.data.crops import CropStack, dense
from gains.data.patch import PatchSampler, contact_points
from gains.errors import InputError
from gains.gamm import GammParams, GammStore, image_maps
from gains.gamm.prepare import prepare_image
from gains.gamm.store import encode_image_maps, map_crop
from gains.intensity import DEFAULT, Normalisation, Scaling

KEPT_IMAGES = 512  # whole-image targets a patch-sampling dataset keeps in memory (the oldest go first)


def image_to_tensor(pixels: np.ndarray, normalisation: Normalisation = DEFAULT,
                    scaling: Scaling | None = None) -> torch.Tensor:
    """Float32 Tensor[3, H, W] of (H, W) or (H, W, C) pixels, normalised as ``gains.intensity`` describes
    (``scaling``: statistics fitted on the whole image when ``pixels`` is a crop of it).

    Raises:
        ValueError: non-finite pixels or an unsupported array.
    """
    img = normalisation.apply(pixels, scaling if scaling is not None else normalisation.fit(pixels))
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


class InstanceDataset(torch.utils.data.Dataset):
    """(image, target) pairs of a COCO instances file; see the module docstring.

    Args:
        annotations: COCO JSON (canonical ``annotations.json`` or a split file).
        images: image folder (default: ``images/`` beside the JSON).
        gamm: GAMM parameters for the maps; None: targets without ``ga_maps`` (a baseline's or an evaluation's).
        ga_store: a store made by ``gains gamm``; used when its manifest matches (else InputError).
        cache_dir: where on-the-fly maps are cached (default ``<json folder>/.gains_cache``); None in
            ``ga_store``'s absence and ``cache=False`` computes maps every time.
        transforms: a paired transform ``(image, target) -> (image, target)``.
        keep_empty: keep images without annotations (False filters them out).
        normalisation: how pixels become the [0, 1] input (the model's ``input_norm``).
        crops: keep ``masks`` and ``ga_maps`` as ``CropStack``s (training: the model's transform makes them
            dense at its input size); False gives dense tensors.
        patch: each item one window of its image at the network size (``gains.data.patch``; training with
            ``data.crop_size``); None: whole images.
    """

    def __init__(self, annotations: str | Path, images: str | Path | None = None, gamm: GammParams | None = None,
                 ga_store: str | Path | None = None, cache_dir: str | Path | None = None, cache: bool = True,
                 transforms: Callable[..., tuple[torch.Tensor, dict[str, Any]]] | None = None,
                 keep_empty: bool = True, normalisation: Normalisation = DEFAULT, crops: bool = False,
                 patch: PatchSampler | None = None) -> None:
        self.coco: CocoAnnotations = load_coco(annotations)
        self.images_dir = Path(images) if images is not None else self.coco.path.parent / "images"
        self.transforms = transforms
        self.normalisation = normalisation
        self.crops = crops
        self.patch = patch
        self._kept: dict[int, tuple[Scaling, dict[str, Any], np.ndarray | None]] = {}
        cats = sorted(self.coco.category_ids)
        self.category_to_label = {c: i + 1 for i, c in enumerate(cats)}
        self.label_to_category = {i + 1: c for i, c in enumerate(cats)}
        self.category_names = {c["id"]: c.get("name", str(c["id"])) for c in self.coco.categories}
        self.images = [im for im in self.coco.images if keep_empty or self.coco.anns_by_image[im.id]]
        if gamm is not None and gamm.target_category is None:
            gamm = replace(gamm, target_category=min(cats, default=1))
        self.gamm = gamm
        self.store = self._open_store(ga_store) if ga_store is not None else None
        self.cache_dir = None
        if gamm is not None and self.store is None and cache:
            base = Path(cache_dir) if cache_dir is not None else self.coco.path.parent / ".gains_cache"
            key = json.dumps([self.coco.sha256, gamm.to_dict(), __version__], sort_keys=True)
            self.cache_dir = base / f"{gamm.tag}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    def _open_store(self, path: str | Path) -> GammStore:
        store = GammStore(path)
        m = store.manifest
        accepted = {self.coco.sha256}
        if self.coco.info.get("split_of_sha256"):
            accepted.add(self.coco.info["split_of_sha256"])
        if m.get("annotations_sha256") not in accepted:
            raise InputError(f"{path}: GA-map store was made from other annotations than {self.coco.path}")
        if self.gamm is None or m.get("params") != self.gamm.to_dict():
            raise InputError(f"{path}: GA-map store parameters {m.get('params')} differ from "
                             f"{self.gamm.to_dict() if self.gamm else None}")
        if m.get("version") != __version__ or m.get("raw"):
            raise InputError(f"{path}: GA-map store is raw or from gains {m.get('version')}; recompute it")
        return store

    def __len__(self) -> int:
        return len(self.images)

    def _maps(self, index: int, anns: list[dict[str, Any]], height: int, width: int) -> CropStack:
        """GA maps [N, H, W] of the image's annotations (file order), as crops."""
        n = len(anns)
        if n == 0:
            return CropStack.of(height, width, [], np.float32)
        image = self.images[index]
        if self.store is not None:
            return CropStack.of(height, width, [self.store.crop(a["id"]) for a in anns], np.float32)
        cached = self.cache_dir / f"{image.id}.npz" if self.cache_dir is not None else None
        if cached is not None and cached.exists():
            with np.load(cached) as z:
                arrays = {k: z[k] for k in z.files}
        else:
            h, w, instances, _ = prepare_image(self.coco, image, self.images_dir)
            keep_zero = self.gamm.zero_maps == "keep"
            maps = [m.sanitised(keep_zero) for m in image_maps(instances, h, w, self.gamm)]
            arrays = encode_image_maps([a["id"] for a in anns], maps, "float32")
            if cached is not None:
                atomic_write(cached, lambda fh: np.savez_compressed(fh, **arrays))
        return CropStack.of(height, width, [map_crop(arrays, j) for j in range(n)], np.float32)

    def pixels(self, index: int) -> np.ndarray:
        """The pixels of image ``index``, (H, W) or (H, W, C) in the file's dtype, as every reader of a dataset
        image gets them (training, ``gains eval``, the report).

        Raises:
            InputError: an unreadable file, one that is not one plane (``gains.core.images``), or one whose size
                differs from the JSON's.
        """
        return read_coco_image(self.coco, self.images[index], self.images_dir)

    def _whole_target(self, index: int, height: int, width: int) -> dict[str, Any]:
        """The target of a whole ``height`` x ``width`` image, masks and GA maps as ``CropStack``s."""
        image = self.images[index]
        anns = self.coco.anns_by_image[image.id]
        masks = []
        boxes = np.zeros((len(anns), 4), dtype=np.float32)
        area = np.zeros(len(anns), dtype=np.float32)
        for j, a in enumerate(anns):
            try:
                crop = segmentation_to_crop(a["segmentation"], height, width)
            except ValueError as exc:
                raise InputError(f"{self.coco.path}: annotation {a['id']}: {exc}") from exc
            if crop is None:
                raise InputError(f"{self.coco.path}: annotation {a['id']}: empty mask")
            masks.append((crop.y0, crop.x0, crop.mask.view(np.uint8), 0.0))
            boxes[j] = crop.x0, crop.y0, crop.x1, crop.y1  # crops are tight: the pixel-edge box
            area[j] = np.count_nonzero(crop.mask)
        target = {
            "masks": CropStack.of(height, width, masks, np.uint8),
            "boxes": torch.from_numpy(boxes),
            "area": torch.from_numpy(area),
            "labels": torch.tensor([self.category_to_label[a["category_id"]] for a in anns], dtype=torch.int64),
            "iscrowd": torch.tensor([int(a.get("iscrowd", 0)) for a in anns], dtype=torch.int64),
            "annotation_ids": torch.tensor([a["id"] for a in anns], dtype=torch.int64),
            "image_id": torch.tensor(image.id, dtype=torch.int64),
        }
        if self.gamm is not None:
            target["ga_maps"] = self._maps(index, anns, height, width)
        return target

    def _patch_item(self, index: int, pixels: np.ndarray) -> tuple[torch.Tensor, dict[str, Any]]:
        """One window of image ``index`` at the network size (``self.patch``); the image's scaling (fitted on the
        whole image, as ``gains predict`` fits it before tiling), whole-image target and contact points (when
        windows are centred on contacts) are kept per image."""
        height, width = pixels.shape[:2]
        if index not in self._kept:
            if len(self._kept) >= KEPT_IMAGES:
                del self._kept[next(iter(self._kept))]
            with self._naming(index):
                scaling = self.normalisation.fit(pixels)
            whole = self._whole_target(index, height, width)
            points = contact_points(whole["masks"]) if self.patch.contacts > 0 else None
            self._kept[index] = scaling, whole, points
        scaling, whole, points = self._kept[index]
        win = self.patch.window(height, width, whole["masks"].boxes, points)
        rows, cols = win.slices
        with self._naming(index):
            tensor = image_to_tensor(pixels[rows, cols], self.normalisation, scaling)
        return self.patch.cut(tensor, whole, win)

    @contextmanager
    def _naming(self, index: int) -> Iterator[None]:
        """Turns a ValueError about image ``index``'s pixels into an InputError naming the file and image."""
        try:
            yield
        except ValueError as exc:
            raise InputError(f"{self.coco.path}: image {self.images[index].id}: {exc}") from exc

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        pixels = self.pixels(index)
        if self.patch is not None:
            tensor, target = self._patch_item(index, pixels)
        else:
            target = self._whole_target(index, *pixels.shape[:2])
            with self._naming(index):
                tensor = image_to_tensor(pixels, self.normalisation)
        if self.transforms is not None:  # flips and turns move crops, not [N, H, W] stacks
            tensor, target = self.transforms(tensor, target)
        return tensor, target if self.crops else {k: dense(v) for k, v in target.items()}


def collate(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """Detection batches stay lists (images differ in size)."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)
