"""Reproduce a shipped model: prepare its data, train it on a time budget, score it on its held-out images.

    .venv/bin/python benchmarks/zoo.py --model nuclei --out /tmp/zoo_nuclei [--minutes 150] [--stage all]

Stages (``--stage``): ``prepare`` (convert and split the shared data into OUT/data), ``train`` (OUT/run,
resumable: run the same command again after an interruption), ``eval`` (OUT/eval_<part>/METRICS.json for
each held-out part) and ``all``. The ``nuclei`` data rule: DSB2018 stage1_train (CC0) less a fixed test set,
namely the test split of the cluster proxy (``cluster_nuclei_proxy.txt`` converted, then ``gains split
--ratios 6:2:2 --seed 0``) and a 10% sample of the other images (``numpy.random.default_rng(0)`` over their
ids in sorted order, the first floor(n / 10)).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import SHARED  # noqa: E402

CONFIGS = {"nuclei": ROOT / "configs" / "zoo_nuclei_cpu.yaml"}
HELD_OUT = ("test_cluster", "test_other")


def _subset(doc: dict, names: set[str], parent_sha: str, name: str) -> dict:
    ids = {im["id"] for im in doc["images"] if im["file_name"] in names}
    info = {**(doc.get("info") or {}), "split": name, "split_of": "annotations.json", "split_of_sha256": parent_sha}
    return {"info": info, "images": [im for im in doc["images"] if im["id"] in ids],
            "annotations": [a for a in doc["annotations"] if a["image_id"] in ids], "categories": doc["categories"]}


def prepare_nuclei(data: Path) -> dict[str, Path]:
    """Convert DSB2018 and write train.json, test_cluster.json, test_other.json beside its annotations.json."""
    from gains.data.dsb2018 import convert_dsb2018
    from gains.data.split import split_dataset

    src = SHARED / "data" / "dsb2018"
    if not src.is_dir():
        raise SystemExit(f"{src}: not available; the nuclei model needs the shared DSB2018 data")
    paths = {name: data / "all" / f"{name}.json" for name in ("train", *HELD_OUT)}
    if all(p.exists() for p in paths.values()):
        return paths
    if not (data / "cluster" / "test.json").exists():
        convert_dsb2018(src / "stage1_train", data / "cluster", subset=src / "cluster_nuclei_proxy.txt", workers=2,
                        overwrite=True, progress=False)
        split_dataset(data / "cluster", (6, 2, 2), seed=0)
    if not (data / "all" / "annotations.json").exists():
        convert_dsb2018(src / "stage1_train", data / "all", workers=2, overwrite=True, progress=False)
    raw = (data / "all" / "annotations.json").read_bytes()
    doc, sha = json.loads(raw), hashlib.sha256(raw).hexdigest()
    proxy = set((src / "cluster_nuclei_proxy.txt").read_text().split())
    cluster_test = {im["file_name"] for im in json.loads((data / "cluster" / "test.json").read_text())["images"]}
    others = sorted(im["file_name"] for im in doc["images"] if Path(im["file_name"]).stem not in proxy)
    order = np.random.default_rng(0).permutation(len(others))
    other_test = {others[i] for i in order[: len(others) // 10]}
    train = {im["file_name"] for im in doc["images"]} - cluster_test - other_test
    for name, names in (("train", train), ("test_cluster", cluster_test), ("test_other", other_test)):
        sub = _subset(doc, names, sha, name)
        sub["info"]["rule"] = __doc__.split("The ``nuclei`` data rule: ")[1].split("\n\"\"\"")[0].strip()
        paths[name].write_text(json.dumps(sub))
    return paths


def train(model: str, out: Path, minutes: float | None, overrides: list[str]) -> dict:
    from gains.config import load_config
    from gains.engine.train import fit

    paths = prepare_nuclei(out / "data")
    sets = [f"data.train={paths['train']}", *overrides]
    if minutes is not None:
        sets.append(f"train.max_minutes={minutes}")
    cfg = load_config(CONFIGS[model], sets)
    t0 = time.time()
    summary = fit(cfg, out / "run", resume=(out / "run" / "last.pt").exists())
    summary["wall_s"] = time.time() - t0
    return summary


def evaluate(out: Path) -> dict[str, dict]:
    from gains.inference.eval_run import evaluate_checkpoint

    paths = prepare_nuclei(out / "data")
    return {part: evaluate_checkpoint(out / "run", paths[part], "all", out / f"eval_{part}", device="cpu")
            for part in HELD_OUT}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(CONFIGS), required=True)
    p.add_argument("--out", type=Path, required=True, help="work folder (outside the repository)")
    p.add_argument("--minutes", type=float, default=None, help="training budget (default: the config's)")
    p.add_argument("--stage", choices=("prepare", "train", "eval", "all"), default="all")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = p.parse_args()
    if args.stage == "prepare":
        print(json.dumps({k: str(v) for k, v in prepare_nuclei(args.out / "data").items()}, indent=1))
    if args.stage in ("train", "all"):
        summary = train(args.model, args.out, args.minutes, args.set)
        print(json.dumps({k: v for k, v in summary.items() if k != "last"}, indent=1))
    if args.stage in ("eval", "all"):
        print(json.dumps(evaluate(args.out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
