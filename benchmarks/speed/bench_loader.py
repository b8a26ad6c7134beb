"""Training data loading: seconds per item of the GAInS training dataset against a baseline git revision.

Times ``InstanceDataset`` items (image, masks, boxes, GA maps from the on-disk cache, and the training
preset's flips and rotations) and their resize into the model's input frame (the model transform's
``resize``, which a training step runs) on the dsb2018-cluster training split, the densest preset (about 100
nuclei per image, up to 1024 x 1024), once with this checkout's code and once with ``--baseline REV``'s,
each in its own process, alternating ``--rounds`` times; the GA-map cache is filled before timing. The
two versions must produce the same targets: the script compares input sizes, boxes, areas, labels, ids,
mask sums and GA-map sums (to float32 rounding) item by item, and fails if they differ.

    .venv/bin/python -m benchmarks.speed.bench_loader [--baseline 1858b45] [--items 24] [--rounds 2]

The default baseline is the last commit before boxes came from the tight mask crops (2026-11-27).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import RESULTS, ROOT

CHECKED = ("boxes", "area", "labels", "annotation_ids")
GA_SUM_RTOL = 1e-6  # GA-map sums agree to this (float32 rounding of the resize)


def time_items(config: Path, run_dir: Path, items: int, dump: Path) -> float:
    """Seconds per item over ``items`` evenly spaced training items (after a warm pass), each item resized into
    the model's input frame by its transform as a training step does; the resized targets to ``dump``."""
    import torch

    from gains.config import load_config
    from gains.engine.train import build_train_dataset, resolve_data
    from gains.models.build import build_model

    torch.set_num_threads(1)
    cfg = load_config(config)
    train_json, _, images = resolve_data(cfg, run_dir)
    dataset = build_train_dataset(cfg, train_json, images, run_dir)
    transform = build_model(cfg.model, len(dataset.category_to_label)).transform.train()
    picked = list(range(len(dataset)))[:: max(1, len(dataset) // items)][:items]
    for i in picked:  # fills the GA-map cache
        dataset[i]
    torch.manual_seed(0)
    out, t0 = [], time.perf_counter()
    for i in picked:
        image, target = transform.resize(*dataset[i])
        out.append({k: target[k] for k in CHECKED} | {"size": torch.tensor(image.shape),
                                                       "mask_sum": target["masks"].sum(),
                                                       "ga_sum": target["ga_maps"].double().sum()})
    seconds = (time.perf_counter() - t0) / len(picked)
    torch.save(out, dump)
    return seconds


def same_targets(a: Path, b: Path) -> bool:
    """The dumps hold the same sizes, boxes, areas, labels, ids and mask sums, and GA-map sums equal to float32
    rounding (the bilinear resize from crops rounds once where the op rounds per term)."""
    import torch

    x, y = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    return len(x) == len(y) and all(
        torch.allclose(p[k], q[k], rtol=GA_SUM_RTOL, atol=0) if k == "ga_sum" else torch.equal(p[k], q[k])
        for p, q in zip(x, y, strict=True) for k in p)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="1858b45", help="git revision whose src/ is the baseline")
    p.add_argument("--items", type=int, default=24)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", type=Path, default=RESULTS / "bench_loader.json")
    p.add_argument("--worker", nargs=3, metavar=("CONFIG", "RUN_DIR", "DUMP"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        config, run_dir, dump = (Path(a) for a in args.worker)
        print(json.dumps({"s_per_item": time_items(config, run_dir, args.items, dump)}))
        return

    from benchmarks.accuracy.harness import preset_config
    from gains.config import dump_config

    _, cfg = preset_config("dsb2018-cluster", False, "cpu", [], RESULTS / "ablation" / "data")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "config.yaml").write_text(dump_config(cfg))
        base_src = tmp / "baseline"
        base_src.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "src"], capture_output=True)
        if archive.returncode:
            raise SystemExit(f"bench_loader: --baseline {args.baseline}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(base_src)], input=archive.stdout, check=True)
        sources = {"current": ROOT / "src", "baseline": base_src / "src"}
        times: dict[str, list[float]] = {name: [] for name in sources}
        for r in range(args.rounds):
            for name, src in sources.items():
                run = tmp / name
                run.mkdir(exist_ok=True)
                env = dict(os.environ, PYTHONPATH=str(src))
                done = subprocess.run([sys.executable, "-m", __spec__.name, "--items", str(args.items), "--worker",
                                       str(tmp / "config.yaml"), str(run), str(tmp / f"{name}.pt")],
                                      env=env, check=True, capture_output=True, text=True, cwd=ROOT)
                times[name].append(json.loads(done.stdout.splitlines()[-1])["s_per_item"])
                print(f"round {r + 1}: {name} {times[name][-1]:.3f} s/item", flush=True)
        if not same_targets(tmp / "current.pt", tmp / "baseline.pt"):
            raise SystemExit(f"bench_loader: the targets of {args.baseline} and this checkout differ")
    med = {name: statistics.median(t) for name, t in times.items()}
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True, text=True)
    current = head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")
    result = {"preset": "dsb2018-cluster", "items": args.items, "rounds": args.rounds, "baseline": args.baseline,
              "current": current,
              "current_s_per_item": med["current"], "baseline_s_per_item": med["baseline"],
              "ratio": med["current"] / med["baseline"], "same_targets": True, "ga_sum_rtol": GA_SUM_RTOL}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"dsb2018-cluster training items: {med['current']:.3f} s/item against {med['baseline']:.3f} s/item at "
          f"{args.baseline} (ratio {result['ratio']:.2f}; same targets)")


if __name__ == "__main__":
    main()
