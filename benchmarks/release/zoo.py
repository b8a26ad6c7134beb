"""Reproduce a shipped model: prepare its data, train it on a time budget, score it on its held-out images.

    .venv/bin/python -m benchmarks.release.zoo --model nuclei --out /tmp/zoo_nuclei [--minutes 150] [--stage all]
    .venv/bin/python -m benchmarks.release.zoo --model overlap --out /tmp/zoo_overlap [--minutes 45] [--stage all]
    .venv/bin/python -m benchmarks.release.zoo --model cross --out /tmp/zoo_cross [--minutes 25] [--stage all]
    python3 -m benchmarks.release.zoo --model nuclei --gpu --out /tmp/zoo_nuclei_gpu [--stage all]

Stages (``--stage``): ``prepare`` (convert and split the shared data into OUT/data, or generate a synthetic
model's scenes there), ``train`` (OUT/run, resumable: run the same command again after an interruption),
``eval`` (OUT/eval_<part>/METRICS.json for each held-out part), ``all`` (those three) and ``export``: the run's
last checkpoint packed as the shipped model (float16, in parts) into src/gains/zoo/models/<model>/ with its
card, then the packed model scored by name through ``gains eval`` on each held-out part, those metrics written
into the card. ``rescore`` scores the shipped model again and rewrites only its card's metrics and summary
(weights and hashes kept). ``bundle`` copies the prepared data into ``--bundle DIR`` with the images that are
grey in three equal channels written as one-channel PNGs (what a model reads from them is the same, checked per
image): a copy small enough to send to a GPU machine without the shared data, used there by copying it to
OUT/data.

``--gpu`` takes ``configs/zoo_<model>_gpu.yaml``: the same network, input scale and test-time settings, the
reference's RoI sampling and the shape of its schedule on a CUDA device, on a budget that fits one 10-minute
GPU call; its card names the GPU.

The ``nuclei`` data rule: DSB2018 stage1_train (CC0) less a fixed test set,
namely the test split of the cluster proxy (``cluster_nuclei_proxy.txt`` converted, then ``gains split
--ratios 6:2:2 --seed 0``) and a 10% sample of the other images (``numpy.random.default_rng(0)`` over their
ids in sorted order, the first floor(n / 10)).

The ``overlap`` data rule: synthetic overlapping translucent cells with their nuclei (``gains.data.synth``,
256 px, categories cell and nucleus), generated here and redistributable: ``write_synthetic("overlap", 800,
256, seed=100)`` for training and ``write_synthetic("overlap", 64, 256, seed=200)`` held out. Training starts
from the shipped ``nuclei`` model (every tensor whose name and shape fit).

The ``cross`` data rule: synthetic thin, curved, worm-like objects that cross and touch (``gains.data.synth``
kind ``thin``, 256 px, category worm), generated here and redistributable: ``write_synthetic("thin", 800,
256, seed=100)`` for training and ``write_synthetic("thin", 64, 256, seed=200)`` held out. Training starts
from the shipped ``nuclei`` model (every tensor whose name and shape fit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import ROOT
from benchmarks.accuracy.harness import SHARED

CONFIGS = {model: ROOT / "configs" / f"zoo_{model}_cpu.yaml" for model in ("nuclei", "overlap", "cross")}
GPU_CONFIGS = {model: path.with_name(path.name.replace("_cpu", "_gpu")) for model, path in CONFIGS.items()}
HELD_OUT = {"nuclei": ("test_cluster", "test_other"), "overlap": ("test",), "cross": ("test",)}
# what the card's summary says of the training data, before the held-out segm/AP
DESCRIBE = {"nuclei": "DSB2018 nuclei (CC0)", "overlap": "synthetic overlapping cells and nuclei (generated, CC0)",
            "cross": "synthetic thin, curved, crossing worm-like objects (generated, CC0)"}
# a synthetic model -> the gains.data.synth scene kind its data is generated from (categories: the kind's)
SYNTHETIC = {"overlap": "overlap", "cross": "thin"}
SCENES = {"train": (800, 100), "test": (64, 200)}  # every synthetic model: split -> (scenes, seed)
SCENE_SIZE = 256  # px, square


def data_rule(model: str) -> str:
    """The paragraph "The ``MODEL`` data rule: ..." of this module's docstring, as the card records it."""
    return __doc__.split(f"The ``{model}`` data rule: ")[1].split("\n\n")[0].strip()


def _subset(doc: dict, names: set[str], parent_sha: str, name: str) -> dict:
    ids = {im["id"] for im in doc["images"] if im["file_name"] in names}
    info = {**(doc.get("info") or {}), "split": name, "split_of": "annotations.json", "split_of_sha256": parent_sha}
    return {"info": info, "images": [im for im in doc["images"] if im["id"] in ids],
            "annotations": [a for a in doc["annotations"] if a["image_id"] in ids], "categories": doc["categories"]}


def prepare_nuclei(data: Path) -> dict[str, Path]:
    """Convert DSB2018 and write train.json, test_cluster.json, test_other.json beside its annotations.json."""
    from gains.data.dsb2018 import convert_dsb2018
    from gains.data.split import split_dataset

    paths = {name: data / "all" / f"{name}.json" for name in ("train", *HELD_OUT["nuclei"])}
    if all(p.exists() for p in paths.values()):  # prepared before, or a bundle copied here (no shared data needed)
        return paths
    src = SHARED / "data" / "dsb2018"
    if not src.is_dir():
        raise SystemExit(f"{src}: not available; the nuclei model needs the shared DSB2018 data")
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
        sub["info"]["rule"] = data_rule("nuclei")
        paths[name].write_text(json.dumps(sub))
    return paths


def prepare_synthetic(model: str, data: Path) -> dict[str, Path]:
    """Generate a synthetic model's train and test scenes (kind ``SYNTHETIC[model]``, ``SCENES``) into
    DATA/<split>/ (kept where already there); {split: its annotations.json}, whose info records the split and
    the model's data rule."""
    from gains.data.synth import write_synthetic

    rule = data_rule(model)
    paths = {}
    for name, (n, seed) in SCENES.items():
        paths[name] = data / name / "annotations.json"
        if not paths[name].exists():
            write_synthetic(SYNTHETIC[model], n, SCENE_SIZE, seed, data / name, overwrite=True)
            doc = json.loads(paths[name].read_text())
            doc["info"] = {**doc["info"], "split": name, "rule": rule}
            paths[name].write_text(json.dumps(doc))
    return paths


def prepare(model: str, data: Path) -> dict[str, Path]:
    """The model's data: {"train": json, <held-out part>: json, ...}."""
    return prepare_synthetic(model, data) if model in SYNTHETIC else prepare_nuclei(data)


def train(model: str, out: Path, minutes: float | None, overrides: list[str], gpu: bool = False) -> dict:
    from gains.config import load_config
    from gains.engine.train import fit

    paths = prepare(model, out / "data")
    sets = [f"data.train={paths['train']}", *overrides]
    if minutes is not None:
        sets.append(f"train.max_minutes={minutes}")
    cfg = load_config((GPU_CONFIGS if gpu else CONFIGS)[model], sets)
    t0 = time.time()
    summary = fit(cfg, out / "run", resume=True)  # continues a run of an earlier job, else starts one
    summary["wall_s"] = time.time() - t0
    return summary


def run_device(out: Path) -> str:
    """Where to score the run in OUT/run: ``cuda`` if it trained on a CUDA device (and one is here), else ``cpu``."""
    import torch

    from gains.config import load_config

    trained = load_config(out / "run" / "config.yaml").train.device
    return "cuda" if trained.startswith("cuda") and torch.cuda.is_available() else "cpu"


def evaluate(model: str, out: Path) -> dict[str, dict]:
    from gains.inference.eval_run import evaluate_checkpoint
    from gains.inference.predictor import PredictOptions

    paths = prepare(model, out / "data")
    options = PredictOptions(device=run_device(out))
    return {part: evaluate_checkpoint(out / "run", paths[part], "all", out / f"eval_{part}", options)
            for part in HELD_OUT[model]}


def bundle(model: str, out: Path, dest: Path) -> dict[str, int]:
    """Copy the prepared data (OUT/data) into ``dest``, the grey-in-RGB images as one-channel PNGs; returns
    {"images": n, "grey": n written as one channel, "bytes": total size}. SystemExit if ``dest`` exists."""
    import shutil

    from PIL import Image

    from gains.core.images import read_image

    if dest.exists():
        raise SystemExit(f"{dest}: already exists; choose a new folder")
    paths = prepare(model, out / "data")
    root = out / "data"
    files = {p.parent.relative_to(root) / "images" / im["file_name"] for p in paths.values()  # the loader's layout
             for im in json.loads(p.read_text())["images"]}
    grey, tmp = 0, dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for path in paths.values():
        (tmp / path.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, tmp / path.relative_to(root))
    for name in sorted(files):
        src, dst = root / name, tmp / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        pixels = read_image(src)
        if pixels.ndim == 3 and pixels.shape[-1] == 3 and src.suffix.lower() == ".png" \
                and (pixels == pixels[..., :1]).all():
            Image.fromarray(pixels[..., 0]).save(dst, optimize=True)
            if not np.array_equal(read_image(dst), pixels[..., 0]):
                raise SystemExit(f"{dst}: the one-channel copy does not read back as {src}")
            grey += 1
        else:
            shutil.copyfile(src, dst)
    tmp.rename(dest)
    return {"images": len(files), "grey": grey, "bytes": sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())}


DATA_CARD = {
    "nuclei": {"dataset": "Kaggle Data Science Bowl 2018, stage1_train (BBBC038v1), 664 images",
               "licence": "CC0 1.0 (BBBC038v1, Broad Bioimage Benchmark Collection)"},
    "overlap": {"dataset": "gains synthetic 'overlap' scenes (gains.data.synth), 256 x 256 px, 8-bit",
                "licence": "CC0 1.0 (generated by this project's code)"},
    "cross": {"dataset": "gains synthetic 'thin' scenes (gains.data.synth), 256 x 256 px, 8-bit",
              "licence": "CC0 1.0 (generated by this project's code)"},
}
CARD_METRICS = ("segm/AP", "segm/AP50", "segm/AP75", "aji_gains", "aji", "pq", "dsb_score", "contact_iou",
                "contact_recall50")


def started_from(weights: str) -> str:
    """The card's words for ``model.weights``."""
    if weights == "none":
        return "scratch (no pretrained weights)"
    return f"the shipped {weights!r} model (model.weights={weights}: every tensor whose name and shape fit)"


def machine(device: str) -> str:
    """The card's words for the machine a run trained on (``device`` as ``run_device`` gives it): its GPU for
    ``cuda``, else its CPU cores."""
    import os
    import platform

    import torch

    if device == "cuda":
        return f"{platform.machine()}, {os.cpu_count()} CPU cores, 1 GPU ({torch.cuda.get_device_name(0)})"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU"


def export(model: str, out: Path, dest: Path) -> dict:
    """Pack OUT/run/last.pt as the shipped ``model`` into DEST/<model>/ (see the module docstring); returns
    the card."""
    from gains import zoo
    from gains.config import config_to_dict, saved_config
    from gains.engine.checkpoint import load_checkpoint
    from gains.engine.train import with_test_scale

    paths = prepare(model, out / "data")
    held_out = HELD_OUT[model]
    ckpt = load_checkpoint(out / "run" / "last.pt")
    cfg = with_test_scale(saved_config(ckpt["config"]), paths["train"])  # runs before the scale rule lack it
    ckpt["config"] = config_to_dict(cfg)
    stopped = json.loads((out / "run" / "train_summary.json").read_text())
    device = run_device(out)
    gpu = device == "cuda"
    docs = {name: json.loads(p.read_text()) for name, p in paths.items()}
    names = sorted(im["file_name"] for im in docs["train"]["images"])
    fields = {
        "summary": "", "architecture": f"{cfg.model.variant} Mask R-CNN, {cfg.model.backbone}-FPN, {cfg.model.norm}",
        "preprocessing": {"input_norm": cfg.model.input_norm, "input_percentiles": cfg.model.input_percentiles,
                          "test_scale": cfg.model.test_scale, "object_size_px": cfg.model.object_size},
        "training_data": {**DATA_CARD[model], "rule": docs["train"]["info"]["rule"], "train_images": len(names),
                          "train_instances": len(docs["train"]["annotations"]),
                          "train_file_names_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
                          "held_out": {part: sorted(im["file_name"] for im in docs[part]["images"])
                                       for part in held_out}},
        "training": {"started_from": started_from(cfg.model.weights), "iterations": stopped["iterations"],
                     "stop_reason": stopped["stop_reason"], "training_minutes": round(stopped["elapsed_s"] / 60, 1),
                     "budget_minutes": stopped["max_minutes"], "schedule_max_iters": stopped["max_iters"],
                     "machine": machine(device),
                     "command": f".venv/bin/python -m benchmarks.release.zoo --model {model} --out {out} "
                                f"--minutes {stopped['max_minutes']:g}" + (" --gpu" if gpu else "")},
    }
    card = zoo.pack(ckpt, dest, model, fields)
    start = "from scratch" if cfg.model.weights == "none" else f"from {cfg.model.weights}"
    where = "one GPU" if gpu else f"a {__import__('os').cpu_count()}-core CPU"
    card["summary"] = f"{card['architecture']}; {DESCRIBE[model]}, {start} on {where}"
    card = with_metrics(card, held_out_metrics(model, paths, cfg.eval.max_dets, device, out))
    (dest / model / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    return card


def held_out_metrics(model: str, paths: dict[str, Path], max_dets: int, device: str, out: Path) -> dict[str, dict]:
    """The shipped ``model`` scored by name through ``gains eval`` on each held-out part (into
    OUT/zoo_eval_<part>): {part: {metric: value rounded to 4 places, "command": how}}."""
    metrics = {}
    for part in HELD_OUT[model]:
        ev = out / f"zoo_eval_{part}"
        subprocess.run([sys.executable, "-m", "gains", "eval", model, "--data", str(paths[part]), "--split", "all",
                        "--out", str(ev), "--device", device], check=True)
        m = json.loads((ev / "METRICS.json").read_text())
        images = len(json.loads(paths[part].read_text())["images"])
        metrics[part] = {k: round(m[k], 4) for k in CARD_METRICS if m.get(k) is not None}
        metrics[part]["command"] = (f"gains eval {model} --data {paths[part]} --split all --out EVAL_DIR "
                                    f"(images: {images}, up to {max_dets} detections)")
    return metrics


def with_metrics(card: dict, metrics: dict[str, dict]) -> dict:
    """``card`` with its held-out metrics replaced and its summary ending in their segm/AP (any segm/AP tail
    of the summary replaced)."""
    head = card["summary"].split("; segm/AP ")[0]
    tail = ", ".join(f"{m['segm/AP']:.3f} ({part.replace('_', ' ')})" for part, m in metrics.items())
    return {**card, "summary": f"{head}; segm/AP {tail}", "metrics": metrics}


def rescore(model: str, out: Path, dest: Path) -> dict:
    """Score the shipped ``model`` again on its held-out parts (prepared into OUT/data as for training) and
    rewrite only the metrics and summary of its card in DEST/<model>/ (the weights and their hashes are kept);
    returns the card. For metrics added to ``gains eval`` after the model was packed."""
    from gains import zoo
    from gains.config import saved_config

    paths = prepare(model, out / "data")
    max_dets = saved_config(zoo.load(model)["config"]).eval.max_dets
    card = with_metrics(zoo.card(model), held_out_metrics(model, paths, max_dets, "cpu", out))
    (dest / model / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    return card


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(CONFIGS), required=True)
    p.add_argument("--out", type=Path, required=True, help="work folder (outside the repository)")
    p.add_argument("--minutes", type=float, default=None, help="training budget (default: the config's)")
    p.add_argument("--stage", choices=("prepare", "train", "eval", "all", "export", "bundle", "rescore"),
                   default="all")
    p.add_argument("--gpu", action="store_true", help="train with configs/zoo_<model>_gpu.yaml on a CUDA device")
    p.add_argument("--bundle", type=Path, help="with --stage bundle: the new folder for the compact data copy")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = p.parse_args()
    if (args.stage == "bundle") != (args.bundle is not None):
        p.error("--stage bundle and --bundle DIR go together")
    if args.stage == "prepare":
        print(json.dumps({k: str(v) for k, v in prepare(args.model, args.out / "data").items()}, indent=1))
    if args.stage == "bundle":
        print(json.dumps(bundle(args.model, args.out, args.bundle), indent=1))
    if args.stage in ("train", "all"):
        summary = train(args.model, args.out, args.minutes, args.set, args.gpu)
        print(json.dumps({k: v for k, v in summary.items() if k != "last"}, indent=1))
    if args.stage in ("eval", "all"):
        print(json.dumps(evaluate(args.model, args.out), indent=1))
    if args.stage == "export":
        card = export(args.model, args.out, ROOT / "src" / "gains" / "zoo" / "models")
        print(json.dumps({k: card[k] for k in ("summary", "metrics", "bytes")}, indent=1))
    if args.stage == "rescore":
        card = rescore(args.model, args.out, ROOT / "src" / "gains" / "zoo" / "models")
        print(json.dumps({k: card[k] for k in ("summary", "metrics")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
