"""Label TIFFs: instance k (1, 2, ... in order) has value k, background 0; uint16, uint32 beyond 65,535 instances.

Predictions: ``<stem>_labels.tif`` beside the other outputs, or, where instances overlap, one
``<stem>_labels_layer<k>.tif`` per layer of the fewest greedy layers in which none do (k = 0, 1, ...).
Ground truth (``gains export --to labels``): a dataset the label converter reads back, ``labels/<stem>.tif``
beside a copy of the image in ``images/``; a label image cannot hold overlapping instances, so they are refused.

No full-size array is made: the layers are assigned from the overlaps of the instances' mask crops, and each
layer is painted a ``TILE`` x ``TILE`` tile at a time from the crops that touch the tile, so memory follows the
tile and the crops, whatever the image's size. An image that fits in one tile is written as one plain image;
a larger one as a tiled TIFF (``TILE`` x ``TILE`` tiles, deflate-compressed), which tifffile, Fiji (Bio-Formats)
and QuPath read tile by tile.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from gains.atomic import atomic_path, atomic_write
from gains.core.images import encode_tiff
from gains.core.masks import Instance, MaskCrop
from gains.core.pairs import overlapping_pairs
from gains.formats.result import ImageResult

COMMANDS = ("predict", "export")
HELP = "label TIFFs"
TILE = 512  # side of a TIFF tile: a tile's label array is TILE * TILE * 4 bytes at most
DEFLATE_LEVEL = 1  # zlib level of painted tiles (labels compress well even at the fastest level)
TileIndex = dict[tuple[int, int, int], list[int]]  # (layer, tile row, tile column) -> instance indices, in order


def label_dtype(n: int) -> np.dtype:
    """uint16 for up to 65,535 instances, else uint32."""
    return np.dtype(np.uint16 if n < 65536 else np.uint32)


def overlaps_before(crops: Sequence[MaskCrop]) -> list[list[int]]:
    """Per instance j, the indices i < j (increasing) of the earlier instances whose masks share a pixel with it."""
    earlier: list[list[int]] = [[] for _ in crops]
    for i, j in overlapping_pairs(crops):
        earlier[j].append(i)
    return earlier


def layer_assignment(crops: Sequence[MaskCrop], earlier: list[list[int]] | None = None) -> np.ndarray:
    """int64 (N,): each instance's layer, greedy in order: the first layer none of the earlier instances it
    overlaps is in. Layers are numbered 0, 1, ... with no gap, so their count is ``max + 1`` (1 for none).

    Args:
        crops: the instances' mask crops, in order (predictions: by decreasing score).
        earlier: ``overlaps_before(crops)`` where the caller has it.
    """
    earlier = overlaps_before(crops) if earlier is None else earlier
    layers = np.zeros(len(crops), dtype=np.int64)
    for j, before in enumerate(earlier):
        taken = {int(layers[i]) for i in before}
        layers[j] = next(k for k in range(len(taken) + 1) if k not in taken)
    return layers


def tile_index(crops: Sequence[MaskCrop | None], layers: np.ndarray, tile: int) -> TileIndex:
    """Which instances touch each tile of each layer: ``(layer, row, col)`` of every ``tile`` x ``tile`` tile
    that an instance's box reaches -> the instances' indices, in order. None crops (nothing to paint) are left
    out. Tiles no instance reaches are not keys."""
    index: TileIndex = {}
    for k, crop in enumerate(crops):
        if crop is None:
            continue
        for r in range(crop.y0 // tile, (crop.y1 - 1) // tile + 1):
            for c in range(crop.x0 // tile, (crop.x1 - 1) // tile + 1):
                index.setdefault((int(layers[k]), r, c), []).append(k)
    return index


def paint(crops: Sequence[MaskCrop | None], members: Sequence[int], y0: int, x0: int, height: int, width: int,
          dtype: np.dtype) -> np.ndarray:
    """The (height, width) window at image row ``y0``, column ``x0`` of a label image: instance k of ``members``
    (indices into ``crops``) has value k + 1 where its mask is, background 0. Members must not overlap."""
    out = np.zeros((height, width), dtype=dtype)
    for k in members:
        c = crops[k]
        r0, r1 = max(c.y0, y0), min(c.y1, y0 + height)
        c0, c1 = max(c.x0, x0), min(c.x1, x0 + width)
        if r0 < r1 and c0 < c1:
            window = out[r0 - y0 : r1 - y0, c0 - x0 : c1 - x0]
            window[c.mask[r0 - c.y0 : r1 - c.y0, c0 - c.x0 : c1 - c.x0]] = k + 1
    return out


def label_layers(instances: Sequence[Instance], height: int, width: int) -> list[np.ndarray]:
    """Full-size label images (height, width), uint16 (uint32 beyond 65,535 instances), for callers that show
    them whole (napari, ``gains.api``): one when no instances overlap, else the fewest greedy layers in which none
    do (``layer_assignment``). Instance k (in order) has value k + 1 in its layer. The writers never call it."""
    crops = [inst.mask for inst in instances]
    layers = layer_assignment(crops)
    dtype = label_dtype(len(crops))
    count = int(layers.max()) + 1 if len(crops) else 1
    return [paint(crops, np.flatnonzero(layers == k).tolist(), 0, 0, height, width, dtype) for k in range(count)]


def _tiles(crops: Sequence[MaskCrop], index: TileIndex, layer: int, height: int, width: int,
           dtype: np.dtype) -> Iterator[bytes]:
    """The deflated tiles of one layer, row by row, each TILE x TILE (edge tiles zero-padded), little-endian;
    every empty tile is the same bytes, compressed once."""
    dtype = dtype.newbyteorder("<")
    empty = zlib.compress(bytes(TILE * TILE * dtype.itemsize), 9)
    for r in range(-(-height // TILE)):
        for c in range(-(-width // TILE)):
            members = index.get((layer, r, c))
            if members is None:
                yield empty
            else:
                tile = paint(crops, members, r * TILE, c * TILE, TILE, TILE, dtype)
                yield zlib.compress(tile.tobytes(), DEFLATE_LEVEL)


def write_layer(path: Path, crops: Sequence[MaskCrop], index: TileIndex, layer: int, height: int, width: int,
                dtype: np.dtype) -> Path:
    """Write one label layer to ``path`` atomically (see the module docstring); returns ``path``."""
    if height <= TILE and width <= TILE:  # one tile: a plain image, as ever
        members = index.get((layer, 0, 0), [])
        payload = encode_tiff(paint(crops, members, 0, 0, height, width, dtype))
        atomic_write(path, lambda fh: fh.write(payload))
        return path
    import tifffile

    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, _tiles(crops, index, layer, height, width, dtype), shape=(height, width),
                         dtype=dtype.newbyteorder("<"), byteorder="<", tile=(TILE, TILE), compression="zlib")
    return path


def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """The label TIFF(s) of one image (see the module docstring).

    Raises:
        ValueError: ground truth whose instances overlap, naming the first two (their ids): the first instance
            j that overlaps an earlier one, and the first earlier one i it overlaps.
    """
    crops = [inst.mask for inst in result.instances]
    earlier = overlaps_before(crops)
    layers = layer_assignment(crops, earlier)
    count = int(layers.max()) + 1 if len(crops) else 1
    index = tile_index(crops, layers, TILE)
    dtype = label_dtype(len(crops))

    def layer(k: int, path: Path) -> Path:
        return write_layer(path, crops, index, k, result.height, result.width, dtype)

    if result.truth:
        if count > 1:
            j = next(j for j, before in enumerate(earlier) if before)
            ids = result.numbers
            raise ValueError(f"annotations {ids[earlier[j][0]]} and {ids[j]} overlap; a label image cannot hold "
                             "overlapping instances (use --to masks)")
        return [layer(0, out_dir / "labels" / f"{stem}.tif"), result.copy_image(out_dir / "images")]
    if count == 1:
        return [layer(0, out_dir / f"{stem}_labels.tif")]
    return [layer(k, out_dir / f"{stem}_labels_layer{k}.tif") for k in range(count)]
