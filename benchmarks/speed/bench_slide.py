"""``gains predict`` as users run it on a large mosaic: one process against Dask, and a whole-slide OME-Zarr.

The mosaic is the CC0 DSB2018 field of ``tests/assets`` (256 x 256, 27 nuclei) repeated, mirrored every other
time so nuclei meet at the joins, and optionally enlarged ``--zoom`` times (pixel repeat, so its objects are
``--zoom`` times the model's size, as on a slide scanned at a higher magnification); it is written band by
band as an OME-Zarr with a 2x pyramid (``--levels``), never held whole. Each arm runs ``gains predict`` in its
own process and reports its wall time, the peak memory the command prints (the largest of the client and the
Dask workers) and the instances. Nothing else should run meanwhile: the workers take every core.

    .venv/bin/python -m benchmarks.speed.bench_slide --side 2048 --arms local dask1 dask2 \\
        --out benchmarks/results/bench_slide_2048.json
    .venv/bin/python -m benchmarks.speed.bench_slide --side 2048 --png --arms before local --before-src OLD/src \\
        --formats coco,labels,overlay,ga,imagej,geojson,csv --out benchmarks/results/bench_slide_before.json
    .venv/bin/python -m benchmarks.speed.bench_slide --side 20480 --zoom 4 --levels 3 --scale 0.375 \\
        --arms dask2 --formats coco,geojson,omezarr,csv,overlay --out benchmarks/results/bench_slide_20k.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import ROOT

ASSET = ROOT / "tests" / "assets" / "dsb2018_29780b28.png"
ARMS = {"local": [], "dask1": ["--dask", "--dask-workers", "1"], "dask2": ["--dask", "--dask-workers", "2"],
        "before": []}  # before: one process, with the code of --before-src
BAND = 1024  # rows of the mosaic made and written at a time


def field(zoom: int) -> np.ndarray:
    """The DSB2018 field (RGB uint8), each pixel repeated ``zoom`` x ``zoom`` times."""
    from PIL import Image

    rgb = np.asarray(Image.open(ASSET).convert("RGB"))
    return np.repeat(np.repeat(rgb, zoom, axis=0), zoom, axis=1) if zoom > 1 else rgb


def write_mosaic(path: Path, side: int, zoom: int, levels: int) -> None:
    """An OME-Zarr (NGFF 0.4 through ome-zarr's writer) of a ``side`` x ``side`` mosaic of ``field(zoom)`` with
    ``levels`` pyramid levels (every 2nd pixel of the one above), written ``BAND`` rows at a time."""
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_multiscales_metadata

    unit = field(zoom)
    n = unit.shape[0]
    root = zarr.open_group(parse_url(path, mode="w").store, mode="w")
    arrays = [root.create_array(str(k), shape=(3, -(-side // 2**k), -(-side // 2**k)), chunks=(3, 1024, 1024),
                                dtype="uint8") for k in range(levels)]
    for y0 in range(0, side, BAND):
        rows = np.arange(y0, min(y0 + BAND, side))
        cols = np.arange(side)
        flip = ((rows[:, None] // n) + (cols[None, :] // n)) % 2 == 1
        r, c = rows[:, None] % n, cols[None, :] % n
        band = np.where(flip[..., None], unit[r, n - 1 - c], unit[r, c])  # (rows, side, 3)
        for k, arr in enumerate(arrays):
            step = 2**k
            sub = band[(-y0) % step :: step, ::step]
            top = -(-y0 // step)
            arr[:, top : top + sub.shape[0], :] = np.moveaxis(sub, -1, 0)
    datasets = [{"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [1.0, 2.0**k, 2.0**k]}]}
                for k in range(levels)]
    write_multiscales_metadata(root, datasets, axes=["c", "y", "x"])


def write_png(path: Path, side: int, zoom: int) -> None:
    """The same mosaic as ``write_mosaic``'s full-resolution level, as one PNG (for code that reads no Zarr)."""
    from PIL import Image

    unit = field(zoom)
    n = unit.shape[0]
    rows, cols = np.arange(side), np.arange(side)
    flip = ((rows[:, None] // n) + (cols[None, :] // n)) % 2 == 1
    r, c = rows[:, None] % n, cols[None, :] % n
    Image.fromarray(np.where(flip[..., None], unit[r, n - 1 - c], unit[r, c])).save(path)


def run_arm(arm: str, image: Path, out: Path, model: str, formats: str, extra: list[str],
            before_src: Path | None = None) -> dict[str, Any]:
    """``gains predict`` with the arm's engine; wall seconds, the printed peak memory and instance count."""
    cmd = [sys.executable, "-m", "gains", "predict", model, str(image), "--out", str(out), "--format", formats,
           "--quiet", *extra, *ARMS[arm]]
    env = dict(os.environ)
    if arm == "before":
        if before_src is None:
            raise SystemExit("the before arm needs --before-src")
        env["PYTHONPATH"] = str(before_src)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"arm": arm, "error": proc.stderr.strip().splitlines()[-1:]}
    found = re.search(r"(\d+) instances .*peak memory (\d+) MiB", proc.stdout)
    if found is None:
        return {"arm": arm, "error": proc.stdout.strip().splitlines()[-3:]}
    return {"arm": arm, "seconds": round(seconds, 1), "instances": int(found[1]), "peak_mib": int(found[2]),
            "command": " ".join(cmd[1:])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=2048)
    p.add_argument("--zoom", type=int, default=1)
    p.add_argument("--levels", type=int, default=1)
    p.add_argument("--model", default="nuclei")
    p.add_argument("--scale", type=float, help="--scale given to gains predict (default: the model's)")
    p.add_argument("--formats", default="coco,csv,overlay")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    p.add_argument("--png", action="store_true", help="predict the mosaic as one PNG instead of an OME-Zarr")
    p.add_argument("--before-src", type=Path, help="src folder of the code the 'before' arm runs")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    extra = [] if args.scale is None else ["--scale", str(args.scale)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / ("mosaic.png" if args.png else "mosaic.ome.zarr")
        start = time.perf_counter()
        if args.png:
            write_png(image, args.side, args.zoom)
        else:
            write_mosaic(image, args.side, args.zoom, args.levels)
        print(f"mosaic {args.side} x {args.side} (zoom {args.zoom}, {args.levels} levels) written in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        for arm in args.arms:
            row = run_arm(arm, image, Path(tmp) / f"out_{arm}", args.model, args.formats, extra, args.before_src)
            rows.append(row)
            print(json.dumps(row), flush=True)
    doc = {"side": args.side, "input": image.name, "zoom": args.zoom, "levels": args.levels, "model": args.model,
           "scale": args.scale, "formats": args.formats, "cores": len(os.sched_getaffinity(0)),
           "load_1min_at_end": os.getloadavg()[0], "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
