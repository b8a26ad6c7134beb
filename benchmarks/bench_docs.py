"""Rewrite the measured tables of docs/BENCHMARKS.md from the benchmarks' results (``make bench`` runs it).

Each table lives between ``<!-- begin NAME -->`` and ``<!-- end NAME -->``; the text around the markers
is kept as it is. NAME is one of
- a speed benchmark (bench_gamm, bench_train, bench_score, bench_predict, bench_loader), rendered from
  ``RESULTS/NAME.json``;
- an accuracy job, ``ablation/PRESET``, ``sensitivity/PRESET`` or ``tuning/PRESET``: the tables of the job's
  own ``RESULTS/ablation/PRESET/ablation.md`` (or sensitivity, tuning), its heading line dropped; likewise
  ``compare/NAME`` from ``RESULTS/compare/NAME/compare.md`` (``benchmarks/accuracy/compare_jobs.py``);
- ``ablation_summary``: one row per ``RESULTS/ablation/*/ablation.json``.
A block whose result file is missing is left untouched. The new document is written atomically.

    .venv/bin/python -m benchmarks.bench_docs [--results benchmarks/results] [--doc docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import RESULTS, ROOT
from gains.atomic import atomic_write
from gains.config import PRECISION_NAMES


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def gamm(d: dict[str, Any]) -> list[str]:
    rows = [[c["case"], c["variant"], c["size"], str(c["instances"]), f"{c['reference_s']:.3f}", f"{c['ours_s']:.4f}",
             f"{c['ratio']:.0f}", f"{c['peak_mib']:.1f}", f"{c['max_abs_err']:.1e}" if c["max_abs_err"] else "0"]
            for c in d["cases"]]
    lines = _table(["case", "variant", "size", "instances", "reference s", "ours s", "ratio", "peak MiB", "max err"],
                   rows)
    big = max(d["cases"], key=lambda c: c["reference_s"])
    lines += ["", f"Largest case ({big['case']}): {big['ratio']:.0f}x, {big['ours_s']:.3f} s against "
              f"{big['reference_s']:.1f} s; smallest ratio over all cases {min(c['ratio'] for c in d['cases']):.0f}x."]
    if d.get("cli"):
        lines += ["", *gamm_cli(d["cli"])]
    if "dsb2018" in d:
        s = d["dsb2018"]
        lines += ["", f"Whole DSB2018 stage1_train ({s['workers']} worker processes): {s['maps']:,} maps of "
                  f"{s['images']} images in {s['gamm_s']:.1f} s; conversion from the Kaggle folders "
                  f"{s['convert_s']:.1f} s. Store {s['store_mib']:.1f} MiB against {s['reference_npy_gib']:.1f} GiB "
                  f"of the reference's float64 full-size .npy files ({100 * s['store_fraction']:.2f}%)."]
    return lines


def gamm_cli(rows: list[dict[str, Any]]) -> list[str]:
    """The whole-command rows of bench_gamm: N copies of a full case through ``gains gamm --raw``."""
    base = [r for r in rows if "baseline" in r]
    header = ["`gains gamm --raw` on", "images", "workers", "reference s", "wall s", "ratio"]
    if base:
        header += [f"`{base[0]['baseline']}` wall s", f"`{base[0]['baseline']}` ratio", "speed-up"]
    out = []
    for r in rows:
        row = [r["case"], str(r["copies"]), str(r["workers"]), f"{r['reference_s']:.0f}", f"{r['wall_s']:.2f}",
               f"{r['ratio']:.0f}"]
        if base:
            row += [f"{r['baseline_wall_s']:.2f}", f"{r['baseline_ratio']:.0f}",
                    f"{r['baseline_wall_s'] / r['wall_s']:.2f}"] if "baseline" in r else ["", "", ""]
        out.append(row)
    lines = _table(header, out)
    if base:
        lines += ["", f"Stores identical to those of `{base[0]['baseline']}`: "
                  f"{'yes' if all(r.get('same_store') for r in base) else 'NO'}."]
    return lines


def train(d: dict[str, Any]) -> list[str]:
    rows, r = d["rows"], d["ratios"]
    low = "bf16" if d["settings"]["device"] == "cpu" else "fp16"

    def med(variant: str, mode: str, amp: str = "none", no_ga: bool = False) -> str:
        hit = [x["median_s"] for x in rows if (x["variant"], x["mode"], x["amp"], x["no_ga"]) == (variant, mode, amp,
                                                                                                   no_ga)]
        return f"{hit[0]:.3f}" if hit else ""

    peak = {p["variant"]: f"{p['peak_mib']:.0f}" for p in d["peaks"]}
    s = d["settings"]
    lines = [f"Settings: device {s['device']}, {s['size']}x{s['size']}, batch {s['batch']}, median of {s['steps']} "
             f"rounds after {s['warmup']} warm-up rounds.", ""]
    lines += _table(["variant", "train fp32 s", f"train {low} s", "inference s", "peak MiB (train)"], [
        ["torchvision Mask R-CNN", med("torchvision", "train"), med("torchvision", "train", low), "",
         peak.get("torchvision", "")],
        ["gains `maskrcnn` baseline", med("maskrcnn", "train"), med("maskrcnn", "train", low), med("maskrcnn", "infer"),
         peak.get("maskrcnn", "")],
        ["gains `gains`", med("gains", "train"), med("gains", "train", low),
         f"{med('gains', 'infer')} (GA maps on) / {med('gains', 'infer', no_ga=True)} (`predict_ga_maps: false`)",
         peak.get("gains", "")]])
    lines.append("")
    lines += _table(["ratio", "measured", "target"], [
        ["GAInS step / baseline step (fp32)", f"{r['train_step_gains_over_maskrcnn']:.3f}", "<= 1.15"],
        [f"GAInS step / baseline step ({low})", f"{r[f'train_step_gains_over_maskrcnn_{low}']:.3f}", "<= 1.15"],
        ["GAInS peak memory / baseline", f"{r['train_peak_gains_over_maskrcnn']:.3f}", "<= 1.10"],
        ["GAInS inference / baseline, `predict_ga_maps: false`", f"{r['infer_gains_noga_over_maskrcnn']:.3f}",
         "<= 1.05"],
        ["GAInS inference / baseline, GA maps predicted", f"{r['infer_gains_over_maskrcnn']:.3f}",
         "(the anomaly branch runs on every detection)"],
        ["baseline step / torchvision step", f"{r['train_step_maskrcnn_over_torchvision']:.3f}", "within 10%"],
        [f"GAInS {low} step / fp32 step", f"{r[f'train_step_gains_{low}_over_fp32']:.3f}", f"{low} autocast"]])
    return lines


def score(d: dict[str, Any]) -> list[str]:
    lines = [f"{d['images']} images, {d['predictions']:,} predictions.", ""]
    lines += _table(["scorer", "what it computes", "seconds"], [
        ["pycocotools COCOeval (segm)", f"segm AP ({d['segm_AP_pycocotools']:.4f})", f"{d['pycocotools_segm_s']:.1f}"],
        ["`gains score`", f"segm AP ({d['segm_AP_gains']:.4f}), bbox AP, aji_gains, aji, aji_plus, pq, f1_50, "
         "dsb_score, per category and per image", f"{d['gains_score_s']:.1f}"]])
    return [*lines, "", f"Ratio {d['ratio']:.2f}."]


def predict(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for size in sorted({r["size"] for r in rows}):
        a, b = (next(r for r in rows if r["size"] == size and r["variant"] == v) for v in ("maskrcnn", "gains"))
        ta, tb = a["seconds"] / a["images"], b["seconds"] / b["images"]
        out.append([f"{size:,} x {size:,}", str(a["tiles"]), f"{ta:.2f}", f"{tb:.2f}", f"{tb / ta:.2f}",
                    f"{b['instances']:,}", f"{a['peak_mib']:.0f} / {b['peak_mib']:.0f}"])
    return _table(["image", "tiles", "maskrcnn s/img", "gains s/img (GA maps on)", "time ratio", "instances",
                   "peak MiB maskrcnn / gains"], out)


def loader(d: dict[str, Any]) -> list[str]:
    lines = _table(["code", "seconds per training item"], [
        [f"`{d['current']}`" if "current" in d else "this checkout", f"{d['current_s_per_item']:.3f}"],
        [f"baseline `{d['baseline']}`", f"{d['baseline_s_per_item']:.3f}"]])
    return [*lines, "", f"Ratio {d['ratio']:.2f} ({d['items']} items of the {d['preset']} training split, median of "
            f"{d['rounds']} rounds; {'identical' if d['same_targets'] else 'DIFFERENT'} targets"
            + (f", GA-map sums to a relative {d['ga_sum_rtol']:g}" if "ga_sum_rtol" in d else "") + ")."]


def train_cli(d: dict[str, Any]) -> list[str]:
    """bench_train_cli: median step time of each arm through ``gains train`` (and with the data wait, in results
    that have it), and the ratios."""
    waits = all("median_iteration_s" in a for a in d["arms"].values())
    amps = any("amp" in a for a in d["arms"].values())
    rows = [[n, ", ".join(f"`{s}`" for s in a["sets"]) + (f" (code of `{a['tree']}`)" if "tree" in a else ""),
             *([PRECISION_NAMES.get(a.get("amp"), a.get("amp") or "not recorded")] if amps else []),
             f"{a['median_step_s']:.3f}", f"{a['images_per_s']:.2f}",
             *([f"{a['median_iteration_s']:.3f}", f"{a['images_per_s_with_data']:.2f}"] if waits else []),
             str(a["steps"])] for n, a in d["arms"].items()]
    lines = _table(["arm", "settings (over the preset)", *(["precision"] if amps else []), "median step s",
                    "images/s", *(["with data wait s", "images/s with it"] if waits else []), "steps"], rows)
    ratios = [f"{k} {v:.2f}x" for k, v in d.items() if "/" in k or k.endswith("speed-up")]
    cpu = d.get("cpu")
    machine = (f" {cpu['model']}, {cpu['cores']} cores, torch capability {cpu['capability']}, "
               f"{'native' if cpu['native_bf16'] else 'no native'} bf16." if cpu else "")
    return [*lines, "", f"{d['preset']}: {d['iters']} iterations per run from scratch, {d['rounds']} rounds "
            f"alternated, first {d['skip']} iterations of each run left out. " + "; ".join(ratios) + "." + machine]


def profile(d: dict[str, Any]) -> list[str]:
    """profile_step: seconds (share of the step) per part, one column per arm."""
    arms = d["arms"]
    parts = list(next(iter(arms.values()))["median_s"])
    rows = [[k] + [f"{a['median_s'][k]:.3f} ({100 * a['median_s'][k] / a['parts_step_s']:.0f}%)"
                   for a in arms.values()] for k in parts]
    rows += [["sum of parts (no data)"] + [f"{a['parts_step_s']:.3f}" for a in arms.values()],
             ["uncut step"] + [f"{a['plain_step_s']:.3f}" for a in arms.values()]]
    start = "from scratch" if d["weights"] == "none" else f"from `{d['weights']}`" + (" (all of it)" if d.get(
        "heads") else " (backbone, FPN, RPN; fresh heads)")
    return [*_table(["part, median s (share)", *arms], rows), "",
            f"{d['preset']}, {start}, median of {d['steps']} steps, {d['threads']} threads, torch {d['torch']}."]


def train_options(d: dict[str, Any]) -> list[str]:
    """bench_train_options: forward + backward seconds of each candidate, each against eager NCHW."""
    sec = d["seconds"]
    base = {k: sec[k.split(",")[0] + ", NCHW"] for k in sec}
    lines = _table(["forward + backward, bf16 autocast", "s", "against NCHW"],
                   [[k, f"{v:.3f}", f"{v / base[k]:.2f}x"] for k, v in sec.items()])
    note = (f"; `torch.compile`'s first call took {d['compile_first_call_s']:.0f} s (compilation, or loading it from "
            "inductor's on-disk cache)"
            if d.get("compile_first_call_s") else "")
    return [*lines, "", f"{d['size']} px images, batch {d['batch']}, {d['rois']} RoIs of 14 x 14 for the branches, "
            f"median of {d['repeat']} calls, {d['threads']} threads{note}."]


def blas_threads(d: dict[str, Any]) -> list[str]:
    """bench_blas_threads: the backbone's forward after nothing, after torch products, after numpy products."""
    base = d["rows"]["nothing"]["backbone_forward_s"]
    rows = [[k, f"{r['own_s']:.3f}", f"{r['backbone_forward_s']:.3f}", f"{r['backbone_forward_s'] / base:.2f}x"]
            for k, r in d["rows"].items()]
    return [*_table(["run right before the backbone's forward", "its own s", "backbone forward s", "against nothing"],
                    rows), "",
            f"ResNet-18-FPN-GN backbone, batch 2 at {d['size']} px, bf16 autocast; {d['instances']} GA maps of a "
            f"{d['frame']} px frame (crops of 60-200 px) resized to {d['size']} px; median of {d['repeat']} calls, "
            f"{d['threads']} threads, torch {d['torch']}, numpy {d['numpy']}."]


def mosaic(d: dict[str, Any]) -> list[str]:
    """bench_mosaic: the scenes alone, the mosaic whole and tiled; segm/AP, AP50, aji_gains, instances."""
    rows = [[k, f"{r['segm/AP']:.3f}", f"{r['segm/AP50']:.3f}", f"{r['aji_gains']:.3f}", str(r["predicted"])]
            for k, r in d["rows"].items()]
    (h, w), (gr, gc) = d["mosaic"], d["grid"]
    cap = d.get("max_dets_per_scene")
    return [*_table(["prediction", "segm/AP", "AP50", "aji_gains", "instances"], rows), "",
            f"`{d['model']}` on " + ("one held-out scene" if d.get("repeat") else f"{gr * gc} held-out scenes")
            + f" of `{Path(d['data']).name}`, as a {gr} x {gc} mosaic of "
            f"{w} x {h} px; tiled with tile {d['tile']}, overlap {d['overlap']} (network pixels)"
            + (f"; AP over at most {cap} detections per scene ({cap * gr * gc} for the mosaic)" if cap else "")
            + f". Scale: {next(iter(d['rows'].values()))['scale_line']}."]


RENDERERS: dict[str, Callable[[Any], list[str]]] = {
    "bench_gamm": gamm, "bench_train": train, "bench_score": score, "bench_predict": predict,
    "bench_loader": loader, "bench_loader/cropstack": loader, "bench_loader/resize-from-crops": loader,
    "bench_train_cli/resize-from-crops/dsb2018-cluster": train_cli,
    "bench_train_cli/resize-from-crops/dsb2018-cluster-repeat": train_cli,
    "bench_train_cli/synthetic-overlap": train_cli, "profile_step/synthetic-overlap": profile,
    "bench_train_cli/box64/isbi2014": train_cli, "profile_step/box64/isbi2014": profile,
    "bench_train_options": train_options, "bench_mosaic": mosaic, "bench_blas_threads": blas_threads,
    "bench_mosaic/repeat": mosaic, "bench_mosaic/repeat-overlap160": mosaic, "bench_mosaic/overlap": mosaic,
    "bench_mosaic/repeat-tile1024": mosaic, "bench_mosaic/repeat-merge": mosaic, "bench_mosaic/overlap-merge": mosaic,
    "profile_step/roi-pool/isbi2014": profile, "bench_train_cli/roi-pool/isbi2014": train_cli,
    "bench_train_cli/roi-pool/synthetic-overlap": train_cli,
    "bench_train_cli/before-after/synthetic-overlap": train_cli, "bench_train_cli/before-after/isbi2014": train_cli,
    "bench_train_cli/amp-amd/isbi2014": train_cli, "profile_step/width-amd/isbi2014": profile,
    "bench_train_cli/workers-amd/dsb2018-cluster": train_cli,
    "bench_train_cli/a64-sgd/isbi2014": train_cli, "bench_train_cli/a64-sgd/synthetic-overlap": train_cli,
    "bench_train_cli/amp-avx2/isbi2014": train_cli, "bench_train_cli/auto-avx2/isbi2014": train_cli,
    "bench_train_cli/auto-avx2/synthetic-overlap": train_cli, "profile_step/fusion1/isbi2014": profile,
    "profile_step/fusion1/isbi2014-step0": profile,
    "bench_train_cli/fusion1/isbi2014": train_cli, "bench_train_cli/fusion1/synthetic-overlap": train_cli,
    "bench_train_cli/blas/isbi2014": train_cli, "bench_train_cli/blas/synthetic-overlap": train_cli,
    "profile_step/blas/isbi2014": profile, "profile_step/blas/synthetic-overlap": profile,
    "profile_step/a96/isbi2014-own": profile, "bench_train_cli/a96/isbi2014": train_cli,
    "bench_train_cli/a96/synthetic-overlap": train_cli, "bench_train_cli/a96/synthetic-overlap-repeat": train_cli}


def ablation_summary(jobs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """One row per ablation job (its folder name, its ablation.json): both models' mean segm/AP and the
    per-image paired aji_gains difference."""
    rows = []
    for folder, d in jobs:
        g, m, a = d["summary"]["gains"], d["summary"]["maskrcnn"], d["paired_per_image"]["aji_gains"]
        n = d["iters"]  # one count, {model: count} or {model: [count per seed]}
        if isinstance(n, dict):
            n = {v: round(sum(c) / len(c)) if isinstance(c, list) else c for v, c in n.items()}
            n = str(n["gains"]) if n["gains"] == n["maskrcnn"] else f"{n['gains']} / {n['maskrcnn']}"
        rows.append([f"`{folder}`", d["preset"] + (", equal time" if d.get("equal_time") else "")
                     + (f", from {Path(d['init']).name}" if d.get("init") else "")
                     + (", with gains-matched" if d.get("matched") else "")
                     + (", fp32" if d.get("amp") == "none" else "")
                     + "".join(f", {o}" for o in d.get("overrides", []) if not o.startswith("model.weights")),
                     str(n), str(len(d["seeds"])),
                     f"{g['segm/AP']['mean']:.3f}",
                     f"{m['segm/AP']['mean']:.3f}", f"{a['mean']:+.3f} [{a['ci_low']:+.3f}, {a['ci_high']:+.3f}]",
                     f"{a['wins']}/{a['losses']}"])
    return _table(["job", "preset", "iterations (gains / maskrcnn)", "seeds", "segm/AP gains", "segm/AP maskrcnn",
                   "aji_gains, gains - maskrcnn per image (95% CI)", "images better/worse"], rows)


JOB_BLOCK = re.compile(r"<!-- begin ((ablation|sensitivity|tuning|compare)/[\w.-]+) -->")


def job_tables(path: Path) -> list[str]:
    """A job's markdown summary without its ``###`` heading line (the document has its own heading)."""
    lines = path.read_text().splitlines()
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return lines


def _replace_block(doc: str, name: str, body: list[str]) -> str:
    pattern = re.compile(rf"(<!-- begin {re.escape(name)} -->\n).*?(<!-- end {re.escape(name)} -->)", re.S)
    text = "\n".join(body) + "\n"
    return pattern.sub(lambda m: m.group(1) + text + m.group(2), doc)


def update(doc: str, results: Path) -> tuple[str, list[str]]:
    """``doc`` with every block whose result file exists in ``results`` re-rendered; also the names rewritten."""
    done = []
    for name, render in RENDERERS.items():
        path = results / f"{name}.json"
        if path.exists() and f"<!-- begin {name} -->" in doc:
            doc = _replace_block(doc, name, render(json.loads(path.read_text())))
            done.append(name)
    jobs = sorted((results / "ablation").glob("*/ablation.json"))
    if jobs and "<!-- begin ablation_summary -->" in doc:
        doc = _replace_block(doc, "ablation_summary", ablation_summary(
            [(j.parent.name, json.loads(j.read_text())) for j in jobs]))
        done.append("ablation_summary")
    for name, kind in JOB_BLOCK.findall(doc):
        path = results / name / f"{kind}.md"
        if path.exists():
            doc = _replace_block(doc, name, job_tables(path))
            done.append(name)
    return doc, done


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = p.parse_args()
    text, done = update(args.doc.read_text(), args.results)
    atomic_write(args.doc, lambda fh: fh.write(text.encode()))
    print(f"{args.doc}: rewrote {', '.join(done) if done else 'nothing'}")


if __name__ == "__main__":
    main()
