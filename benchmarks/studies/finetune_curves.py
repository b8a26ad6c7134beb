"""Fine-tuning that pays? Held-out segm/AP and contact metrics of ``gains train DIR`` against training minutes and
against the number of annotated images, from a shipped model and from scratch (issue 34, item 3).

The data is ISBI2014 (overlapping cervical cells, 512 x 512, internal use only: the numbers are reported, no
weights are kept), which neither shipped model saw: images 1-30 are the pool the training folders are cut from
(the first N by file number) and images 31-45 the held-out test set (the ``isbi2014-30-15`` split). Each cell
of the grid is one real ``gains train FOLDER --weights W --minutes M --out RUN`` (its own seeded validation
split inside the folder, the recipe's CPU defaults, patch training) followed by ``gains eval RUN --data ISBI
--split test``. There is no zero-minute point: the shipped models know one category (``nuclei``: nucleus) and
ISBI2014 has two (cell, nucleus), so a shipped model scores 0 there before it is fine-tuned, which says nothing
about its masks.

A call runs one grid (all minutes on all images, then the image counts at ``--images-minutes``) per starting
model and variant; ``--variants maskrcnn`` trains the baseline (``model.variant=maskrcnn``), and ``--set KEY=VALUE``
changes the recipe for every run of the call (recipe A/Bs: the run's name carries the change). A run whose
held-out metrics exist is not repeated, so a job resumes; the weights are deleted once scored. Rows are merged
into the results file by run name, so calls add up:

    python -m benchmarks.studies.finetune_curves --minutes 2 5 10 20 --images 5 10 20 30 --images-minutes 5
    python -m benchmarks.studies.finetune_curves --weights overlap --minutes 2 5 10 --images 5 30 --images-minutes 5
    python -m benchmarks.studies.finetune_curves --variants maskrcnn --weights nuclei --minutes 2 5 10 --images 30
    python -m benchmarks.studies.finetune_curves --weights nuclei --minutes 5 --images 30 --set train.lr=0.01

Writes ``benchmarks/results/finetune_curves.json`` and the figure ``docs/img/finetune_curves.png``. Time budgets
are wall-clock: run it on a quiet machine and read each row's ``load_after`` (the 1-minute load average
when its training ended) and ``iterations``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import RESULTS, ROOT

SHARED = Path(os.environ.get("GAINS_SHARED", ROOT.parent / "shared"))
WORK = Path(tempfile.gettempdir()) / "gains_finetune_curves"
GAINS = str(Path(sys.executable).with_name("gains"))
COLOURS = {"nuclei": "tab:orange", "overlap": "tab:red", "none": "tab:blue"}  # one colour per start, both panels
METRICS = ("segm/AP", "segm/AP50", "segm/AP75", "aji_gains", "contact_iou", "contact_recall50")


def gains(*args: str) -> None:
    """Run one ``gains`` command; stop the job with its output if it fails."""
    done = subprocess.run([GAINS, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"gains {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def prepare(work: Path) -> Path:
    """The ISBI2014 dataset in canonical form with its 30/15 split (made once); returns its folder."""
    data = work / "isbi2014"
    if not (data / "test.json").is_file():
        src = SHARED / "data" / "isbi2014"
        gains("convert", "isbi2014", str(src / "train_images"), "--gt", str(src / "isbi_train_GT.mat"), "--out",
              str(data))
        gains("split", str(data), "--preset", "isbi2014-30-15")
    return data


def subset(data: Path, n: int, work: Path) -> Path:
    """A canonical folder of the first ``n`` training images (by file number), made once."""
    from gains.core.coco import load_coco
    from gains.core.masks import segmentation_to_crop
    from gains.data.canonical import Sample, write_dataset

    out = work / f"train{n}"
    if (out / "annotations.json").is_file():
        return out
    coco = load_coco(data / "train.json")
    images = sorted(coco.images, key=lambda im: int(Path(im.file_name).stem))[:n]
    samples = []
    for im in images:
        anns = coco.anns_by_image[im.id]
        crops = [segmentation_to_crop(a["segmentation"], im.height, im.width) for a in anns]
        samples.append(Sample(im.file_name, None, crops, [a["category_id"] for a in anns],
                              source=data / "images" / im.file_name))
    write_dataset(out, samples, coco.categories, info={"source": f"first {n} ISBI2014 training images"})
    return out


def evaluate(model: str, data: Path, out: Path) -> dict[str, float | None]:
    """``gains eval MODEL --data DATA --split test``'s metrics (read back when they exist)."""
    metrics = out / "METRICS.json"
    if not metrics.is_file():
        gains("eval", model, "--data", str(data), "--split", "test", "--out", str(out), "--quiet")
    found = json.loads(metrics.read_text())
    return {k: None if found.get(k) is None else float(found[k]) for k in METRICS}


def run_name(weights: str, n: int, minutes: float, variant: str, sets: list[str]) -> str:
    """The run folder's name: start, images, minutes, then the variant and ``--set`` values when not the recipe's."""
    extra = ([variant] if variant != "gains" else []) + [x.split("=", 1)[0].split(".")[-1] + x.split("=", 1)[1]
                                                       for x in sets]
    return "-".join([f"{weights}-n{n}-m{minutes:g}", *extra])


def cell(data: Path, work: Path, weights: str, n: int, minutes: float, variant: str = "gains",
         sets: list[str] | None = None) -> dict[str, Any]:
    """One run of the grid: train (unless its held-out metrics exist), evaluate, delete the weights (ISBI2014 has
    no licence); its settings, metrics, iterations and the wall time of ``gains train`` (None when the run was
    there already)."""
    sets = sets or []
    run = work / run_name(weights, n, minutes, variant, sets)
    started, wall = time.monotonic(), None
    if not (run / "eval" / "METRICS.json").is_file():
        overrides = [a for x in ([f"model.variant={variant}"] if variant != "gains" else []) + sets
                     for a in ("--set", x)]
        gains("train", str(subset(data, n, work)), "--weights", weights, "--minutes", str(minutes), "--out", str(run),
              "--overwrite", "--quiet", *overrides)
        wall = round(time.monotonic() - started, 1)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    iters = max((x.get("iter", 0) for x in lines if x.get("split") != "val"), default=0)
    result = evaluate(str(run), data, run / "eval")
    for weights_file in run.glob("*.pt"):
        weights_file.unlink()
    return {"run": run.name, "weights": weights, "variant": variant, "set": sets, "images": n, "minutes": minutes,
            "iterations": iters, "train_wall_s": wall,
            "load_after": round(os.getloadavg()[0], 2) if wall is not None else None, **result}


def figure(rows: list[dict[str, Any]], path: Path, budget: float) -> None:
    """segm/AP against minutes (all images) and against images (at ``budget`` minutes), one line per start and
    variant; rows with recipe changes (``set``) are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if not r.get("set")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    most = max(r["images"] for r in rows)
    for weights, variant in sorted({(r["weights"], r.get("variant", "gains")) for r in rows}):
        mine = [r for r in rows if r["weights"] == weights and r.get("variant", "gains") == variant]
        by_time = sorted((r["minutes"], r["segm/AP"]) for r in mine if r["images"] == most)
        by_n = sorted((r["images"], r["segm/AP"]) for r in mine if r["minutes"] == budget)
        label = f"from {weights}" + ("" if variant == "gains" else f" ({variant})")
        style = {"color": COLOURS.get(weights), "linestyle": "-" if variant == "gains" else "--", "marker": "o"}
        if by_time:
            left.plot(*zip(*by_time, strict=True), label=label, **style)
        if len(by_n) > 1:
            right.plot(*zip(*by_n, strict=True), label=label, **style)
    left.set(xlabel="training minutes (2 CPU cores)", ylabel="held-out segm/AP", title=f"all {most} images")
    right.set(xlabel="annotated images (20% held out for validation)", ylabel="held-out segm/AP",
              title=f"{budget:g} minutes")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Fine-tuning on ISBI2014 (held-out images 31-45) with gains train DIR")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[2.0, 5.0])
    p.add_argument("--images", type=int, nargs="+", default=[5, 30])
    p.add_argument("--weights", nargs="+", default=["nuclei", "none"])
    p.add_argument("--variants", nargs="+", default=["gains"], choices=["gains", "maskrcnn"])
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a recipe change for every run of this call (its runs are kept apart by name)")
    p.add_argument("--images-minutes", type=float, help="the budget of the image-count curve (default: the longest)")
    p.add_argument("--work", type=Path, default=WORK)
    p.add_argument("--out", type=Path, default=RESULTS / "finetune_curves.json")
    p.add_argument("--figure", type=Path, default=ROOT / "docs" / "img" / "finetune_curves.png")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = prepare(args.work)
    most = max(args.images)
    longest = args.images_minutes if args.images_minutes is not None else max(args.minutes)
    command = " ".join(["python -m benchmarks.studies.finetune_curves", *sys.argv[1:]])
    summary = json.loads(args.out.read_text()) if args.out.is_file() else {"commands": [], "rows": []}
    summary.setdefault("commands", [summary.pop("command")] if "command" in summary else [])
    for r in summary["rows"]:
        r.setdefault("run", run_name(r["weights"], r["images"], r["minutes"], r.get("variant", "gains"), []))
    rows = {r["run"]: r for r in summary["rows"]}
    for variant in args.variants:
        for weights in args.weights:
            grid = [(most, m) for m in args.minutes] + [(n, longest) for n in args.images if n != most]
            for n, minutes in grid:
                row = cell(data, args.work, weights, n, minutes, variant, args.sets)
                before = rows.get(row["run"], {})
                rows[row["run"]] = {**before, **row, "train_wall_s": row["train_wall_s"] or before.get("train_wall_s"),
                                    "load_after": row["load_after"] or before.get("load_after")}
                print(json.dumps(row), flush=True)
                summary.update(rows=list(rows.values()), cpus=os.cpu_count())
                if command not in summary["commands"]:
                    summary["commands"].append(command)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(summary, indent=1))
    figure(list(rows.values()), args.figure, longest)
    print(f"wrote {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
