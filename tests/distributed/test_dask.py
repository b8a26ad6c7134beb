"""``gains predict --dask`` on a LocalCluster of 2 worker processes, driven as users run it (the CLI, a subprocess):
the same instances as one process on a mosaic with objects across tile seams, a killed folder run resumed without
redoing its finished images, and an OME-Zarr in and an OME-Zarr label group out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

pytest.importorskip("distributed")
pytest.importorskip("ome_zarr")

ASSET = Path(__file__).resolve().parents[1] / "assets" / "dsb2018_29780b28.png"  # CC0, 256 x 256 RGBA
GAINS = [sys.executable, "-m", "gains"]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # the workers' torch threads: same arithmetic in every process

pytestmark = pytest.mark.slow


def mosaic(rows: int, cols: int) -> np.ndarray:
    """The DSB2018 field repeated rows x cols times (RGB), mirrored so that nuclei meet at the joins."""
    rgb = np.asarray(Image.open(ASSET).convert("RGB"))
    tiles = [[rgb[:, ::-1] if (r + c) % 2 else rgb for c in range(cols)] for r in range(rows)]
    return np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)


def gains(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*GAINS, *args], capture_output=True, text=True, env=env or ONE_THREAD, timeout=900)


def results(folder: Path) -> list[tuple]:
    """The instances of a predictions folder, comparable exactly: (image, category, score, RLE counts)."""
    entries = json.loads((folder / "results.json").read_text())
    return sorted((e["image_id"], e["category_id"], round(e["score"], 6), e["segmentation"]["counts"])
                  for e in entries)


TILES = ["--tile", "384", "--overlap", "96", "--quiet"]  # 3 x 3 tiles of 256 image px at the model's 1.5x


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512 x 512 mosaic (as PNG and as a 1-level OME-Zarr) and its single-process tiled prediction."""
    folder = tmp_path_factory.mktemp("mosaic")
    rgb = mosaic(2, 2)
    Image.fromarray(rgb).save(folder / "mosaic.png")
    _write_ome_zarr(folder / "mosaic.ome.zarr", rgb)
    one = gains("predict", "nuclei", str(folder / "mosaic.png"), "--out", str(folder / "one"), *TILES, "--format",
                "coco,labels")
    assert one.returncode == 0, one.stderr
    assert len(results(folder / "one")) > 50  # a dense mosaic: many nuclei, some across the seams of the 9 tiles
    return folder


def test_dask_tiles_give_the_single_process_tiled_result(one_process: Path, tmp_path: Path) -> None:
    many = gains("predict", "nuclei", str(one_process / "mosaic.png"), "--out", str(tmp_path / "dask"), *TILES,
                 "--format", "coco,labels", "--dask", "--dask-workers", "2")
    assert many.returncode == 0, many.stderr
    expected = results(one_process / "one")
    assert results(tmp_path / "dask") == expected
    index = json.loads((tmp_path / "dask" / "index.json").read_text())
    assert index["engine"] == "dask" and index["instances"] == len(expected)
    assert index["images"][0]["files"] == ["mosaic_labels.tif"]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "dask" / "mosaic_labels.tif"),
                                  tifffile.imread(one_process / "one" / "mosaic_labels.tif"))


def _folder_of(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "screen"
    folder.mkdir()
    field = mosaic(1, 1)
    for k in range(n):
        Image.fromarray(np.roll(field, 37 * k, axis=1)).save(folder / f"field{k:02d}.png")
    return folder


def test_a_killed_dask_folder_run_resumes_without_redoing_finished_images(tmp_path: Path) -> None:
    folder, out = _folder_of(tmp_path, 6), tmp_path / "out"
    args = ["predict", "nuclei", str(folder), "--out", str(out), "--quiet", "--format", "coco,geojson", "--dask",
            "--dask-workers", "2", "--resume"]
    proc = subprocess.Popen([*GAINS, *args], env=ONE_THREAD, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / ".gains-records"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(list(records.glob("*.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the client and its cluster's workers, mid-run
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert 2 <= len(done) < 6, "the run was not stopped midway"
    assert not (out / "index.json").exists()
    again = gains(*args)
    assert again.returncode == 0, again.stderr
    assert f"6 images, {len(done)} of them done by an earlier run" in again.stdout
    for name, stamp in done.items():  # finished images were neither predicted nor written again
        assert (records / name).stat().st_mtime_ns == stamp
    index = json.loads((out / "index.json").read_text())
    assert index["resumed_images"] == len(done) and len(index["images"]) == 6
    assert sorted(p.name for p in out.glob("*.geojson")) == [f"field{k:02d}.geojson" for k in range(6)]
    fresh = gains("predict", "nuclei", str(folder), "--out", str(tmp_path / "fresh"), "--quiet", "--format", "coco")
    assert fresh.returncode == 0, fresh.stderr
    assert results(out) == results(tmp_path / "fresh")


def _write_ome_zarr(path: Path, rgb: np.ndarray) -> None:
    """A 2-level OME-Zarr image (c, y, x) written with ome-zarr, as a user's converter would."""
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image

    root = zarr.open_group(parse_url(path, mode="w").store, mode="w")
    write_image(np.moveaxis(rgb, -1, 0), root, axes="cyx", scaler=None, storage_options={"chunks": (3, 128, 128)})


def test_ome_zarr_in_and_label_group_out_match_the_same_image_as_png(one_process: Path, tmp_path: Path) -> None:
    zarr_run = gains("predict", "nuclei", str(one_process / "mosaic.ome.zarr"), "--out", str(tmp_path / "zarr"),
                     *TILES, "--format", "coco,omezarr", "--dask", "--dask-workers", "2")
    assert zarr_run.returncode == 0, zarr_run.stderr
    assert results(tmp_path / "zarr") == results(one_process / "one")  # read lazily, tile by tile, same pixels

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    written = tmp_path / "zarr" / "mosaic.ome.zarr"
    layers = sorted(p.name for p in (written / "labels").iterdir() if p.name.startswith("layer"))
    label_images = [np.asarray(next(iter(Reader(parse_url(written / "labels" / name))())).data[0])
                    for name in layers]
    assert all(image.shape[-2:] == (512, 512) for image in label_images)
    tiff = tifffile.imread(one_process / "one" / "mosaic_labels.tif")  # one layer: these nuclei do not overlap
    assert len(label_images) == 1
    np.testing.assert_array_equal(label_images[0].reshape(tiff.shape), tiff)
    assert set(np.unique(tiff)) - {0} == set(range(1, len(results(one_process / "one")) + 1))


def test_no_scheduler_at_the_address_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = gains("predict", "nuclei", str(ASSET), "--out", str(out), "--quiet", "--dask", "tcp://127.0.0.1:9")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("gains predict: error: --dask tcp://127.0.0.1:9: no Dask")
    assert not out.exists()
    alone = gains("predict", "nuclei", str(ASSET), "--out", str(out), "--dask-workers", "2")
    assert alone.returncode == 2 and "add --dask" in alone.stderr and not out.exists()
