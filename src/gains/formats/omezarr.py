"""``<stem>.ome.zarr/``: the instances as an OME-Zarr (NGFF 0.4) label group, one label image per overlap layer.

``<stem>.ome.zarr/labels/`` lists ``layer0``, ``layer1``, ...: the layers of ``gains.formats.labels`` (the fewest
greedy layers in which no instances overlap), so overlapping instances survive, each whole, in different layers.
Instance k (1, 2, ... in order) has value k in its layer, background 0, as in the label TIFFs; every layer is
uint32, chunked ``CHUNK`` x ``CHUNK`` (Blosc-zstd), with NGFF ``multiscales`` (axes ``y``, ``x``; level s keeps
every 2^s-th row and column, down to ``CHUNK`` pixels a side) and ``image-label`` metadata (``properties``: each
value's ``category`` and ``score``).

It reads back with the ome-zarr library (``ome_zarr.reader.Reader``; tested); OME-Zarr readers (napari-ome-zarr,
QuPath's, Fiji's) take ``<stem>.ome.zarr/labels`` or one layer, ``.../labels/layer0`` (not tried here). Written
chunk by chunk from the mask crops (chunks no instance reaches are not stored), never as a full-size array,
into a temporary folder renamed into place when complete. Needs ``pip install 'gains-seg[dask]'`` (ome-zarr).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gains.atomic import atomic_folder
from gains.core.masks import MaskCrop
from gains.errors import InputError
from gains.formats.labels import TileIndex, layer_assignment, paint, tile_index
from gains.formats.overlay import downsampled
from gains.formats.records import category_table
from gains.formats.result import ImageResult

COMMANDS = ("predict",)
HELP = "OME-Zarr label group <stem>.ome.zarr: one label image per overlap layer"
CHUNK = 1024  # chunk side of every level: a chunk being painted is CHUNK * CHUNK * 4 bytes
DTYPE = np.dtype(np.uint32)


def require() -> Any:
    """``ome_zarr.writer``, the library this format writes its metadata with.

    Raises:
        InputError: ome-zarr is not installed, naming the extra that brings it.
    """
    try:
        from ome_zarr import writer
    except ImportError as exc:
        raise InputError("--format omezarr needs ome-zarr: pip install 'gains-seg[dask]'") from exc
    return writer


def levels(height: int, width: int) -> list[int]:
    """The pyramid's steps 1, 2, 4, ...: halved until the level fits in one chunk (at least one level)."""
    steps = [1]
    while max(-(-height // steps[-1]), -(-width // steps[-1])) > CHUNK:
        steps.append(steps[-1] * 2)
    return steps


def _write_level(group: Any, path: str, crops: Sequence[MaskCrop | None], index: TileIndex, layer: int,
                 height: int, width: int) -> None:
    """Create array ``path`` in ``group``, (height, width) uint32, and paint the chunks of ``layer`` that its
    crops reach (``index``: ``tile_index`` of ``crops`` at ``CHUNK``)."""
    import numcodecs

    array = group.create_array(path, shape=(height, width), dtype=DTYPE, chunks=(CHUNK, CHUNK), fill_value=0,
                               compressors=numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE),
                               chunk_key_encoding={"name": "v2", "separator": "/"})
    for (k, r, c), members in index.items():
        if k == layer:
            y0, x0 = r * CHUNK, c * CHUNK
            h, w = min(CHUNK, height - y0), min(CHUNK, width - x0)
            array[y0 : y0 + h, x0 : x0 + w] = paint(crops, members, y0, x0, h, w, DTYPE)


def write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>.ome.zarr`` of one image's instances (module docstring); returns the folder.

    Raises:
        InputError: ome-zarr is not installed.
    """
    writer = require()
    import zarr
    from ome_zarr.format import FormatV04

    fmt = FormatV04()
    crops = [inst.mask for inst in result.instances]
    layers = layer_assignment(crops)
    count = int(layers.max()) + 1 if len(crops) else 1
    steps = levels(result.height, result.width)
    names = category_table(result.categories)
    path = out_dir / f"{stem}.ome.zarr"
    with atomic_folder(path) as tmp:
        labels = zarr.open_group(str(tmp), mode="w", zarr_format=2).create_group("labels")
        groups = [labels.create_group(f"layer{layer}") for layer in range(count)]
        for s, step in enumerate(steps):
            small = crops if step == 1 else [downsampled(c, step) for c in crops]
            index = tile_index(small, layers, CHUNK)
            for layer, group in enumerate(groups):
                _write_level(group, str(s), small, index, layer, -(-result.height // step), -(-result.width // step))
        datasets = [{"path": str(s), "coordinateTransformations": [{"type": "scale", "scale": [step, step]}]}
                    for s, step in enumerate(steps)]
        for layer, group in enumerate(groups):
            writer.write_multiscales_metadata(group, datasets, fmt=fmt, axes=["y", "x"], name=f"layer{layer}")
            properties = [{"label-value": k + 1, "score": float(inst.score),
                           "category": names.get(int(inst.category_id), (f"category{inst.category_id}",))[0]}
                          for k, inst in enumerate(result.instances) if layers[k] == layer]
            writer.write_label_metadata(labels, f"layer{layer}", properties=properties, fmt=fmt)
    return [path]
