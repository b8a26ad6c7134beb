"""Memory and time of the ``gains predict`` writers on dense synthetic images, without a model.

Each cell is an S x S RGB image with N discs (radius 8-12 px, seeded, clipped at the borders, overlapping where
they fall together), kept as ``Instance`` crops with a GA map over each crop, exactly what the predictor hands the
writers. For every format (coco, labels, overlay, ga, imagej, geojson) a fresh child process builds the cell,
then calls the function ``gains predict`` calls for that format, under an address-space limit of ``--limit-gib``
GiB above what the child had mapped by then (its imports, torch included, and the instances). The child reports
its resident memory before the writer and its peak after (VmHWM), and the writer's seconds; a writer that hits
the limit is recorded as over it. Run it against the code before a change with ``PYTHONPATH=<old>/src``.
``--pixels zarr`` hands the writers the image as a read-only Zarr array (written band by band by the parent,
as a whole slide would come), so the image itself is never in the child's memory; a format the code does not
have is recorded as missing.

    .venv/bin/python -m benchmarks.speed.bench_writers --out benchmarks/results/bench_writers.json
    .venv/bin/python -m benchmarks.speed.bench_writers --pixels zarr --sizes 1000 4000 10000 20000 \
        --counts 100 12000 --out benchmarks/results/bench_writers_zarr.json
    PYTHONPATH=/tmp/base/src .venv/bin/python -m benchmarks.speed.bench_writers --out /tmp/bench_writers_base.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import ROOT

FORMATS = ("coco", "labels", "overlay", "ga", "imagej", "geojson", "csv", "omezarr")
SIZES = (1000, 4000)
COUNTS = (1000, 12000)
CATEGORIES = [{"id": 1, "name": "nucleus"}]


def dense_instances(size: int, n: int, seed: int = 0) -> list[Any]:
    """``n`` disc instances (radius 8-12 px) on a ``size`` x ``size`` image, score order, each a tight crop
    clipped to the image with a float32 GA map in [1, 2) over it."""
    try:
        from gains.core.masks import MaskCrop
    except ImportError:  # the code before gains.core, measured as the 'before' arm
        from gains.gamm.raster import MaskCrop
    from gains.inference.predictor import Instance

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        r = float(rng.uniform(8, 12))
        cy, cx = rng.uniform(0, size, 2)
        y0, x0 = max(int(cy - r), 0), max(int(cx - r), 0)
        y1, x1 = min(int(cy + r) + 1, size), min(int(cx + r) + 1, size)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        disc = (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= r * r
        rows, cols = np.flatnonzero(disc.any(axis=1)), np.flatnonzero(disc.any(axis=0))
        mask = disc[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        ga = (1.0 + rng.random(mask.shape, dtype=np.float32) * mask).astype(np.float32)
        out.append(Instance(1, 1.0 - k / (n + 1), MaskCrop(y0 + int(rows[0]), x0 + int(cols[0]), mask), ga))
    return out


def dense_pixels(size: int, instances: list[Any], seed: int = 0, rows: tuple[int, int] | None = None) -> np.ndarray:
    """(size, size, 3) uint8: dark noisy background, the instances bright; ``rows`` (r0, r1): that band only."""
    r0, r1 = rows or (0, size)
    rng = np.random.default_rng((seed + 1, r0))
    pixels = rng.integers(20, 40, (r1 - r0, size, 3), dtype=np.uint8)
    for inst in instances:
        m = inst.mask
        top, bottom = max(m.y0, r0), min(m.y1, r1)
        if top < bottom:
            band = m.mask[top - m.y0 : bottom - m.y0]
            pixels[top - r0 : bottom - r0, m.x0 : m.x1][band] = 180
    return pixels


def zarr_pixels(size: int, n: int, path: Path, band: int = 1024) -> None:
    """``dense_pixels`` of the cell written as a (size, size, 3) Zarr array ``band`` rows at a time."""
    import zarr

    instances = dense_instances(size, n)
    array = zarr.create_array(store=str(path), shape=(size, size, 3), chunks=(band, band, 3), dtype="uint8")
    for r0 in range(0, size, band):
        array[r0 : r0 + band] = dense_pixels(size, instances, rows=(r0, min(r0 + band, size)))


def write_format(fmt: str, out: Path, pixels: np.ndarray, instances: list[Any]) -> None:
    """Write one format of one image into ``out`` as ``gains predict`` does (the registry ``gains.formats``)."""
    from gains.intensity import DEFAULT

    try:
        from gains.formats import FORMATS
        from gains.formats.result import ImageResult
    except ImportError:  # the code before the registry, measured as the 'before' arm
        return _write_format_before(fmt, out, pixels, instances)
    h, w = pixels.shape[:2]
    if fmt not in FORMATS:
        raise KeyError(fmt)
    module = FORMATS[fmt]
    result = ImageResult(instances, CATEGORIES, h, w, file_name="img.png", pixels=pixels, normalisation=DEFAULT)
    module.write(result, out, "img")
    if hasattr(module, "finish"):
        module.finish(out, [module.collect(result)], CATEGORIES)


def _write_format_before(fmt: str, out: Path, pixels: np.ndarray, instances: list[Any]) -> None:
    """``write_format`` with the writers of the code before the registry (``gains.inference.writers``)."""
    from gains.inference import predict_run, writers
    from gains.intensity import DEFAULT

    h, w = pixels.shape[:2]
    if fmt == "coco":
        results = writers.coco_results(instances, 1, h, w)
        (out / "results.json").write_text(json.dumps(results))
    elif fmt == "labels":
        writers.write_labels(out, "img", instances, h, w)
    elif fmt == "overlay":
        writers.write_overlay(out / "img_overlay.png", pixels, instances, DEFAULT)
    elif fmt == "ga":
        writers.write_ga(out, "img", instances, h, w)
    else:
        predict_run._write_outlines(out, "img", instances, CATEGORIES, [fmt])


def _vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: the peak, in KiB on Linux


def child(formats: list[str], size: int, n: int, out: Path, limit_gib: float, pixels_from: Path | None = None
          ) -> dict[str, Any]:
    """Build the cell, cap the address space at ``limit_gib`` GiB above what is mapped now, write
    ``formats`` one after the other; returns memory (MiB) and seconds, ``over_limit`` when one ran out.
    ``pixels_from``: the cell's pixels as a Zarr array there (``zarr_pixels``), opened read-only."""
    import gains.inference.predict_run  # noqa: F401  (imports before the baseline)

    instances = dense_instances(size, n)
    if pixels_from is None:
        pixels = dense_pixels(size, instances)
    else:
        import zarr

        pixels = zarr.open_array(str(pixels_from), mode="r")
        with contextlib.suppress(ImportError):
            import ome_zarr.writer  # noqa: F401  (the omezarr format's library, imported before the baseline)
    vm = _vm_kib("VmSize") * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + int(limit_gib * 2**30), resource.RLIM_INFINITY))
    before = _vm_kib("VmRSS") / 1024
    start = time.perf_counter()
    try:
        for fmt in formats:
            write_format(fmt, out, pixels, instances)
    except MemoryError:
        return {"over_limit": True, "rss_before_mib": round(before, 1), "limit_gib": limit_gib}
    except KeyError:
        return {"over_limit": None, "missing": True}
    seconds = time.perf_counter() - start
    return {"over_limit": False, "rss_before_mib": round(before, 1), "peak_mib": round(_vm_kib("VmHWM") / 1024, 1),
            "seconds": round(seconds, 2), "limit_gib": limit_gib}


def run_cell(formats: list[str], size: int, n: int, limit_gib: float, timeout: float = 600,
             pixels_from: Path | None = None) -> dict[str, Any]:
    """``child`` in a fresh process (same interpreter and environment, one thread); its report."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", __spec__.name, "--child", ",".join(formats), str(size), str(n), tmp,
               str(limit_gib), *(["--child-zarr", str(pixels_from)] if pixels_from else [])]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        return {"over_limit": None, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cell(result: dict[str, Any]) -> str:
    if result.get("missing"):
        return "no such format"
    if result.get("over_limit"):
        return f"over {result['limit_gib']:g} GiB"
    if result.get("error") is not None:
        return "failed"
    return f"{result['peak_mib']:.0f} MiB ({result['peak_mib'] - result['rss_before_mib']:+.0f}), {result['seconds']} s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="JSON file of the results (required)")
    p.add_argument("--label", help="what code this run measures, as recorded in the JSON (e.g. a revision)")
    p.add_argument("--limit-gib", type=float, default=8.0, help="address space a writer may add (GiB)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--counts", type=int, nargs="+", default=list(COUNTS))
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--pixels", choices=("memory", "zarr"), default="memory",
                   help="the image as an array in memory, or a Zarr array read as the writers go")
    p.add_argument("--child", nargs=5, metavar=("FORMATS", "S", "N", "DIR", "GIB"), help=argparse.SUPPRESS)
    p.add_argument("--child-zarr", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        fmts, size, n, out, gib = args.child
        print(json.dumps(child(fmts.split(","), int(size), int(n), Path(out), float(gib), args.child_zarr)))
        return
    if args.out is None:
        p.error("--out is required")
    import gains

    rows = []
    print(f"gains from {Path(gains.__file__).parent}; peak resident MiB (added by the writer), seconds")
    print(f"{'S':>5} {'N':>6}  " + "  ".join(f"{f:>26}" for f in args.formats.split(",")))
    for size in args.sizes:
        for n in args.counts:
            with tempfile.TemporaryDirectory() as tmp:
                source = None
                if args.pixels == "zarr":
                    source = Path(tmp) / "pixels.zarr"
                    zarr_pixels(size, n, source)
                cells = {fmt: run_cell([fmt], size, n, args.limit_gib, pixels_from=source)
                         for fmt in args.formats.split(",")}
            rows.append({"size": size, "instances": n, "formats": cells})
            print(f"{size:>5} {n:>6}  " + "  ".join(f"{_cell(c):>26}" for c in cells.values()), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"gains": args.label or "this checkout", "limit_gib": args.limit_gib,
                                    "pixels": args.pixels, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
