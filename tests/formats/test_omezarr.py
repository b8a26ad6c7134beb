"""``--format omezarr``: the NGFF label group read back with ome-zarr's reader and with zarr, overlapping instances in
different layers with the label TIFFs' values, the pyramid's levels, and the folder written atomically."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from gains import outputs
from gains.cli import main
from gains.core.masks import Instance
from gains.errors import InputError
from gains.formats import FORMATS, omezarr
from gains.formats.result import ImageResult
from tests.formats.test_bounded import disc_crop, reference_layers

CATEGORIES = [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}]
H, W = 1500, 1200  # two levels: 1500 x 1200 and every other pixel, 750 x 600


def scene() -> list[Instance]:
    """Three discs over one chunk seam (row 1024): the first two overlap, the third overlaps the second only."""
    crops = [disc_crop(1000, 500, 30), disc_crop(1030, 530, 25), disc_crop(1060, 560, 20), disc_crop(10, 1150, 20)]
    return [Instance(1 + k % 2, 0.9 - 0.1 * k, c) for k, c in enumerate(crops)]


def test_the_label_group_reads_back_with_ome_zarr(tmp_path: Path) -> None:
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    instances = scene()
    want = reference_layers(instances, H, W)
    assert len(want) == 2 and (want[1] == 2).any() and (want[0] == 3).any()  # 2 overlaps 1; 3 overlaps 2 only
    (folder,) = omezarr.write(ImageResult(instances, CATEGORIES, H, W), tmp_path, "im")
    assert folder == tmp_path / "im.ome.zarr"
    nodes = list(Reader(parse_url(str(folder / "labels"), fmt=FormatV04()))())
    layers = [n for n in nodes if n.metadata.get("name", "").startswith("layer")]
    assert [n.metadata["name"] for n in layers] == ["layer0", "layer1"]
    for node, layer in zip(layers, want, strict=True):
        assert [d.shape for d in node.data] == [(H, W), (750, 600)]
        assert node.data[0].dtype == np.uint32 and node.data[0].chunksize == (1024, 1024)
        np.testing.assert_array_equal(node.data[0].compute(), layer)
        np.testing.assert_array_equal(node.data[1].compute(), layer[::2, ::2])
        assert [a["name"] for a in node.metadata["axes"]] == ["y", "x"]
        assert node.metadata["coordinateTransformations"][1] == [{"type": "scale", "scale": [2, 2]}]
    assert layers[0].metadata["properties"] == {1: {"score": 0.9, "category": "cell"},
                                                3: {"score": pytest.approx(0.7), "category": "cell"},
                                                4: {"score": pytest.approx(0.6), "category": "nucleus"}}
    assert layers[1].metadata["properties"] == {2: {"score": pytest.approx(0.8), "category": "nucleus"}}


def test_the_label_group_reads_back_with_zarr(tmp_path: Path) -> None:
    instances = scene()
    (folder,) = omezarr.write(ImageResult(instances, CATEGORIES, H, W), tmp_path, "im")
    group = zarr.open_group(str(folder / "labels"), mode="r")
    assert group.attrs["labels"] == ["layer0", "layer1"]
    for k, layer in enumerate(reference_layers(instances, H, W)):
        attrs = group[f"layer{k}"].attrs
        assert attrs["multiscales"][0]["version"] == "0.4" and attrs["image-label"]["version"] == "0.4"
        np.testing.assert_array_equal(group[f"layer{k}/0"][:], layer)
    empty = omezarr.write(ImageResult([], CATEGORIES, 100, 80), tmp_path, "none")[0]
    layer = zarr.open_group(str(empty / "labels"), mode="r")["layer0/0"]
    assert layer.shape == (100, 80) and layer.nchunks_initialized == 0 and not layer[:].any()


def test_a_failed_write_leaves_nothing_and_a_killed_ones_folder_is_cleaned(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    with outputs.claim(out, "predictions"):
        omezarr.write(ImageResult(scene(), CATEGORIES, H, W), out, "im")
        before = sorted(p.relative_to(out) for p in (out / "im.ome.zarr").rglob("*"))

        def broken(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(omezarr, "paint", broken)
        with pytest.raises(OSError, match="disk full"):
            omezarr.write(ImageResult(scene()[:1], CATEGORIES, H, W), out, "im")
    assert sorted(p.relative_to(out) for p in (out / "im.ome.zarr").rglob("*")) == before  # the old one stays
    assert [p.name for p in out.iterdir() if p.name.endswith(".gains-tmp")] == []
    orphan = out / ".im2.ome.zarr.4242.gains-tmp"  # what kill -9 during a write leaves
    (orphan / "labels").mkdir(parents=True)
    (orphan / "labels" / ".zgroup").write_text("{}")
    with outputs.claim(out, "predictions"):
        assert not orphan.exists() and (out / "im.ome.zarr").is_dir()


def test_without_ome_zarr_it_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ome_zarr", None)
    with pytest.raises(InputError, match=r"pip install 'gains-seg\[dask\]'"):
        omezarr.write(ImageResult(scene(), CATEGORIES, H, W), tmp_path, "im")
    assert list(tmp_path.iterdir()) == []


def test_the_registry_offers_it_to_predict_only() -> None:
    assert FORMATS["omezarr"] is omezarr and omezarr.COMMANDS == ("predict",)
    assert omezarr.levels(30000, 20000) == [1, 2, 4, 8, 16, 32] and omezarr.levels(1024, 10) == [1]


@pytest.mark.slow
def test_predict_writes_the_label_tiffs_values(tiny_run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((96, 112)) * 255).astype(np.uint8)).save(tmp_path / "cells.png")
    out = tmp_path / "out"
    assert main(["predict", str(tiny_run), str(tmp_path / "cells.png"), "--out", str(out), "--format",
                 "labels,omezarr", "--score-thresh", "0.0", "--device", "cpu", "--quiet"]) == 0
    tiffs = sorted(out.glob("cells_labels*.tif"))
    group = zarr.open_group(str(out / "cells.ome.zarr" / "labels"), mode="r")
    assert len(group.attrs["labels"]) == len(tiffs) >= 1
    for k, path in enumerate(tiffs):
        np.testing.assert_array_equal(group[f"layer{k}/0"][:], tifffile.imread(path))
