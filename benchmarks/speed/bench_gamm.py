"""GAMM speed: ours (raw mode, identical output) against the reference scripts' recorded times.

For every golden case of ../shared/gamm-golden: the reference's wall time on a 2-core machine
(``params.json``), our best-of-N time for the same image (rasterisation + maps), the speed-up ratio,
our peak traced memory, and the parity error. Then the whole command line: ``gains gamm ... --raw
--workers 2`` as a subprocess on a dataset of N copies of each full golden case (wall time of the
whole command, best of ``--cli-rounds``; ratio = N x reference seconds / wall), also with the ``src/``
of ``--cli-baseline REV`` run back to back, whose store must be identical. Then, when
../shared/data/dsb2018 is present, the whole DSB2018 stage1_train (664 images) through
``gains gamm --variant nuclei --workers 2``.

    .venv/bin/python -m benchmarks.speed.bench_gamm [--repeat 5] [--skip-dsb] [--cli-rounds 3] [--cli-baseline 9412714]
        [--json benchmarks/results/bench_gamm.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from benchmarks import RESULTS, ROOT
from gains.core.masks import segmentation_to_crop
from gains.gamm import GammParams, InstanceInput, image_maps, run_gamm

SHARED = Path(os.environ.get("GAINS_SHARED", ROOT.parent / "shared"))
CLI_COPIES = {"full_isbi2014_img41": 20, "full_dsb2018_0121d675": 60}  # images per CLI dataset


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


def copies_dataset(case: Path, copies: int, out: Path) -> Path:
    """A COCO dataset of ``copies`` copies of a golden case's image and annotations; returns its JSON."""
    doc = json.loads((case / "annotations.json").read_text())
    (out / "images").mkdir(parents=True)
    images, anns = [], []
    for k in range(copies):
        for img in doc["images"]:
            name = f"copy{k:04d}_{img['file_name']}"
            (out / "images" / name).write_bytes((case / img["file_name"]).read_bytes())
            images.append({**img, "id": len(images) + 1, "file_name": name})
            for a in doc["annotations"]:
                if a["image_id"] == img["id"]:
                    anns.append({**a, "id": len(anns) + 1, "image_id": len(images)})
    path = out / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": doc["categories"]}))
    return path


def time_cli(src: Path, annotations: Path, p: dict, store: Path, workers: int) -> tuple[float, float]:
    """(wall s, CPU s of the command and its workers) of one ``gains gamm --raw`` run with ``src`` imported."""
    cmd = [sys.executable, "-m", "gains", "gamm", str(annotations), "--images", str(annotations.parent / "images"),
           "--variant", p["variant"], "--window-size", str(p["ws"]), "--ga-factor", str(p["ga"]),
           "--overlap-hl", str(p["ol"]), "--target-category", str(p["target"]), "--raw", "--workers", str(workers),
           "--out", str(store), "--quiet"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(src)), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"bench_gamm: {' '.join(cmd)} failed:\n{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def same_store(a: Path, b: Path) -> bool:
    """Both stores hold the same map files with identical arrays."""
    files = sorted(f.name for f in (a / "maps").glob("*.npz"))
    if files != sorted(f.name for f in (b / "maps").glob("*.npz")):
        return False
    for name in files:
        with np.load(a / "maps" / name) as x, np.load(b / "maps" / name) as y:
            if sorted(x.files) != sorted(y.files) or any(not np.array_equal(x[k], y[k]) for k in x.files):
                return False
    return True


def baseline_src(rev: str, tmp: Path) -> Path:
    """``src/`` of git revision ``rev``, unpacked under ``tmp``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"bench_gamm: --cli-baseline {rev}: {archive.stderr.decode().strip()}")
    (tmp / "baseline").mkdir()
    subprocess.run(["tar", "-x", "-C", str(tmp / "baseline")], input=archive.stdout, check=True)
    return tmp / "baseline" / "src"


def bench_cli(case: Path, copies: int, workers: int, rounds: int, baseline: str | None) -> dict:
    """The whole ``gains gamm`` command on ``copies`` copies of a case, best of ``rounds``, and the baseline's."""
    p = json.loads((case / "params.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        annotations = copies_dataset(case, copies, tmp / "data")
        sources = {"current": ROOT / "src"}
        if baseline:
            sources["baseline"] = baseline_src(baseline, tmp)
        walls: dict[str, list[float]] = {name: [] for name in sources}
        cpus: dict[str, list[float]] = {name: [] for name in sources}
        for _ in range(rounds):
            for name, src in sources.items():  # back to back, in the same conditions
                store = tmp / f"store_{name}"
                if store.exists():
                    shutil.rmtree(store)
                wall, cpu = time_cli(src, annotations, p, store, workers)
                walls[name].append(wall)
                cpus[name].append(cpu)
        same = same_store(tmp / "store_current", tmp / "store_baseline") if baseline else None
    reference = copies * p["reference_seconds"]
    row = {"case": case.name, "variant": p["variant"], "copies": copies, "workers": workers, "rounds": rounds,
           "reference_s": reference, "wall_s": min(walls["current"]), "cpu_s": min(cpus["current"]),
           "ratio": reference / min(walls["current"])}
    if baseline:
        if not same:
            raise SystemExit(f"bench_gamm: {case.name}: the stores of {baseline} and this checkout differ")
        row.update({"baseline": baseline, "baseline_wall_s": min(walls["baseline"]),
                    "baseline_cpu_s": min(cpus["baseline"]), "baseline_ratio": reference / min(walls["baseline"]),
                    "same_store": True})
    return row


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
    parser.add_argument("--cli-rounds", type=int, default=3, help="timed runs of each CLI command (0: no CLI rows)")
    parser.add_argument("--cli-baseline", metavar="REV", default="9412714",
                        help="git revision whose src/ is timed back to back with this checkout ('' to skip)")
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_gamm.json")
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
    if args.cli_rounds > 0:
        cli = [bench_cli(golden / name, n, args.workers, args.cli_rounds, args.cli_baseline or None)
               for name, n in CLI_COPIES.items() if (golden / name / "params.json").exists()]
        result["cli"] = cli
        print(f"\n{'gains gamm --raw (CLI)':28s} {'copies':>6s} {'reference s':>11s} {'wall s':>7s} {'cpu s':>7s} "
              f"{'ratio':>6s}" + (f" {'baseline wall s':>15s} {'baseline ratio':>14s}" if args.cli_baseline else ""))
        for r in cli:
            print(f"{r['case']:28s} {r['copies']:6d} {r['reference_s']:11.1f} {r['wall_s']:7.2f} {r['cpu_s']:7.2f} "
                  f"{r['ratio']:6.0f}" + (f" {r['baseline_wall_s']:15.2f} {r['baseline_ratio']:14.0f}"
                                          if "baseline" in r else ""))
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
