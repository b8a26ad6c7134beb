"""GAMM speed: ours (raw mode, identical output) against the reference scripts' recorded times.

For every golden case of ../shared/gamm-golden: the reference's wall time on a 2-core machine
(``params.json``), our best-of-N time for the same image (rasterisation + maps), the speed-up ratio,
our peak traced memory, and the parity error. Then, when ../shared/data/dsb2018 is present, the
whole DSB2018 stage1_train (664 images) through ``gains gamm --variant nuclei --workers 2``.

    .venv/bin/python benchmarks/bench_gamm.py [--repeat 5] [--skip-dsb] [--json benchmarks/results/bench_gamm.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from gains.gamm import GammParams, InstanceInput, image_maps, run_gamm, segmentation_to_crop

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GAINS_SHARED", ROOT.parent / "shared"))


def one_case(folder: Path) -> tuple[list[InstanceInput], int, int, GammParams, dict]:
    p = json.loads((folder / "params.json").read_text())
    doc = json.loads((folder / "annotations.json").read_text())
    h, w = p["image_size"]
    params = GammParams(variant=p["variant"], window_size=p["ws"], ga_factor=p["ga"], overlap_hl=p["ol"],
                        target_category=p["target"])

    def build() -> list[InstanceInput]:
        return [InstanceInput(a["id"], a["category_id"], segmentation_to_crop(a["segmentation"], h, w),
                              tuple(a["bbox"])) for a in doc["annotations"]]

    return build, h, w, params, p


def bench_case(folder: Path, repeat: int) -> dict:
    build, h, w, params, p = one_case(folder)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        maps = image_maps(build(), h, w, params)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    image_maps(build(), h, w, params)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    expected = np.load(folder / "expected_maps.npz")
    doc = json.loads((folder / "annotations.json").read_text())
    err = 0.0
    for ann, m in zip(doc["annotations"], maps, strict=True):
        want, got = expected[str(ann["id"])], m.to_dense()
        ok = ~np.isnan(want)
        if ok.any():
            err = max(err, float(np.abs(got[ok] - want[ok]).max()))
    ours = min(times)
    return {"case": folder.name, "variant": p["variant"], "size": f"{h}x{w}", "instances": p["n_instances"],
            "reference_s": p["reference_seconds"], "ours_s": ours, "ratio": p["reference_seconds"] / ours,
            "peak_mib": peak / 2**20, "max_abs_err": err}


def bench_dsb(root: Path, workers: int) -> dict:
    from gains.data.dsb2018 import convert_dsb2018

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ann = convert_dsb2018(root, Path(tmp) / "dsb", workers=workers, progress=False)
        convert_s = time.perf_counter() - t0
        params = GammParams.for_variant("nuclei", target_category=1)
        run = run_gamm(ann, ann.parent / "images", params, out=Path(tmp) / "store", workers=workers, progress=False)
        store_bytes = sum(f.stat().st_size for f in (Path(tmp) / "store").rglob("*") if f.is_file())
        doc = json.loads(ann.read_text())
    size = {im["id"]: im["height"] * im["width"] for im in doc["images"]}
    reference_bytes = sum(8 * size[a["image_id"]] for a in doc["annotations"])  # one float64 H x W .npy each
    return {"images": run.n_images, "maps": run.n_maps, "workers": workers, "gamm_s": run.seconds,
            "convert_s": convert_s, "store_mib": store_bytes / 2**20, "reference_npy_gib": reference_bytes / 2**30,
            "store_fraction": store_bytes / reference_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-dsb", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "bench_gamm.json")
    args = parser.parse_args()
    golden = SHARED / "gamm-golden"
    cases = sorted(p for p in golden.glob("*") if (p / "params.json").exists())
    if not cases:
        raise SystemExit(f"{golden}: no golden cases")
    rows = [bench_case(c, args.repeat) for c in cases]
    print(f"{'case':28s} {'variant':7s} {'size':>8s} {'n':>3s} {'reference s':>11s} {'ours s':>8s} "
          f"{'ratio':>8s} {'peak MiB':>8s} {'max err':>8s}")
    for r in rows:
        print(f"{r['case']:28s} {r['variant']:7s} {r['size']:>8s} {r['instances']:3d} {r['reference_s']:11.3f} "
              f"{r['ours_s']:8.4f} {r['ratio']:8.0f} {r['peak_mib']:8.1f} {r['max_abs_err']:8.1e}")
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
              "cases": rows}
    dsb = SHARED / "data" / "dsb2018" / "stage1_train"
    if not args.skip_dsb and dsb.is_dir():
        d = bench_dsb(dsb, args.workers)
        result["dsb2018"] = d
        print(f"\nDSB2018 stage1_train: {d['maps']} maps of {d['images']} images in {d['gamm_s']:.1f} s "
              f"({d['workers']} workers; conversion {d['convert_s']:.1f} s)")
        print(f"store {d['store_mib']:.1f} MiB vs {d['reference_npy_gib']:.1f} GiB of reference .npy files "
              f"({100 * d['store_fraction']:.2f}%)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
