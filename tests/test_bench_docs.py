"""benchmarks.bench_docs: the measured tables in docs/BENCHMARKS.md are rewritten from the JSON, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import RESULTS, bench_docs
from tests.conftest import ROOT

SCORE = {"images": 3, "predictions": 1234, "pycocotools_segm_s": 2.0, "gains_score_s": 5.0, "ratio": 2.5,
         "segm_AP_pycocotools": 0.25, "segm_AP_gains": 0.25}


def test_update_rewrites_only_the_marked_blocks(tmp_path: Path) -> None:
    (tmp_path / "bench_score.json").write_text(json.dumps(SCORE))
    doc = ("# T\nhand text 1.99\n<!-- begin bench_score -->\nold table 13.0\n<!-- end bench_score -->\nafter\n"
           "<!-- begin bench_gamm -->\nkept: no JSON\n<!-- end bench_gamm -->\n")
    new, done = bench_docs.update(doc, tmp_path)
    assert done == ["bench_score"]
    assert new.startswith("# T\nhand text 1.99\n<!-- begin bench_score -->\n3 images, 1,234 predictions.\n\n| scorer |")
    assert "old table" not in new and "| pycocotools COCOeval (segm) | segm AP (0.2500) | 2.0 |" in new
    assert "Ratio 2.50." in new
    assert new.endswith("<!-- end bench_score -->\nafter\n<!-- begin bench_gamm -->\nkept: no JSON\n"
                        "<!-- end bench_gamm -->\n")
    assert bench_docs.update(new, tmp_path)[0] == new  # idempotent


def test_predict_table_reports_per_image_time_and_ratio() -> None:
    rows = [{"variant": v, "size": 4096, "images": 2, "tiles": 25, "seconds": s, "instances": 10, "peak_mib": m}
            for v, s, m in (("maskrcnn", 10.0, 100.0), ("gains", 15.0, 120.0))]
    lines = bench_docs.predict(rows)
    assert lines[2] == "| 4,096 x 4,096 | 25 | 5.00 | 7.50 | 1.50 | 10 | 100 / 120 |"


def test_gamm_block_adds_the_cli_rows_when_measured() -> None:
    case = {"case": "full_x", "variant": "isbi", "size": "8x8", "instances": 2, "reference_s": 10.0, "ours_s": 0.01,
            "ratio": 1000.0, "peak_mib": 1.0, "max_abs_err": 0.0}
    cli = {"case": "full_x", "variant": "isbi", "copies": 20, "workers": 2, "rounds": 3, "reference_s": 200.0,
           "wall_s": 0.1, "cpu_s": 0.15, "ratio": 2000.0, "baseline": "abc1234", "baseline_wall_s": 0.4,
           "baseline_cpu_s": 0.5, "baseline_ratio": 500.0, "same_store": True}
    assert not any("gains gamm" in line for line in bench_docs.gamm({"cases": [case]}))
    lines = bench_docs.gamm({"cases": [case], "cli": [cli]})
    assert "| full_x | 20 | 2 | 200 | 0.10 | 2000 | 0.40 | 500 | 4.00 |" in lines
    assert lines[-1] == "Stores identical to those of `abc1234`: yes."


def test_job_blocks_take_the_tables_of_the_job_summary(tmp_path: Path) -> None:
    job = tmp_path / "ablation" / "isbi2014"
    job.mkdir(parents=True)
    (job / "ablation.md").write_text("### isbi2014 (10 iterations)\n\n| metric | gains |\n|---|---|\n| aji | 0.5 |\n")
    doc = ("<!-- begin ablation/isbi2014 -->\nold\n<!-- end ablation/isbi2014 -->\nmid\n"
           "<!-- begin sensitivity/isbi2014 -->\nno summary yet\n<!-- end sensitivity/isbi2014 -->\n")
    assert bench_docs.JOB_BLOCK.findall("<!-- begin tuning/isbi2014 -->") == [("tuning/isbi2014", "tuning")]
    assert bench_docs.JOB_BLOCK.findall("<!-- begin compare/isbi2014-x -->") == [("compare/isbi2014-x", "compare")]
    new, done = bench_docs.update(doc, tmp_path)
    assert done == ["ablation/isbi2014"]
    assert new == ("<!-- begin ablation/isbi2014 -->\n| metric | gains |\n|---|---|\n| aji | 0.5 |\n"
                   "<!-- end ablation/isbi2014 -->\nmid\n"
                   "<!-- begin sensitivity/isbi2014 -->\nno summary yet\n<!-- end sensitivity/isbi2014 -->\n")


def test_ablation_summary_has_one_row_per_job() -> None:
    stat = {"mean": 0.5, "std": 0.0}
    job = {"preset": "isbi2014", "iters": 304, "seeds": [0, 1, 2],
           "summary": {"gains": {"segm/AP": stat}, "maskrcnn": {"segm/AP": {"mean": 0.25, "std": 0.0}}},
           "paired_per_image": {"aji_gains": {"mean": 0.0138, "ci_low": 0.002, "ci_high": 0.026, "wins": 31,
                                              "losses": 14}}}
    timed = {**job, "iters": {"gains": 200, "maskrcnn": 290}, "equal_time": True}
    per_seed = {**job, "iters": {"gains": [199, 201, 203], "maskrcnn": [290, 291, 289]}, "equal_time": True,
                "init": "nuclei"}
    same = {**job, "iters": {"gains": [304] * 3, "maskrcnn": [304] * 3}}
    matched = {**job, "seeds": [0, 1], "matched": {"mean_ga_weight": 1.04, "mask_loss_weight": 0.9615},
               "overrides": ["model.input_norm=dtype", "model.weights=nuclei", "model.weights_heads=false"]}
    fp32 = {**job, "amp": "none"}
    lines = bench_docs.ablation_summary(
        [(f"j{i}", d) for i, d in enumerate([job, timed, per_seed, same, matched, fp32, {**job, "amp": "bf16"}])])
    assert lines[2] == "| `j0` | isbi2014 | 304 | 3 | 0.500 | 0.250 | +0.014 [+0.002, +0.026] | 31/14 |"
    assert lines[3] == ("| `j1` | isbi2014, equal time | 200 / 290 | 3 | 0.500 | 0.250 | +0.014 [+0.002, +0.026] "
                        "| 31/14 |")
    assert lines[4].startswith("| `j2` | isbi2014, equal time, from nuclei | 201 / 290 | 3 |")
    assert lines[5] == lines[2].replace("j0", "j3")
    assert lines[6].startswith("| `j4` | isbi2014, with gains-matched, model.input_norm=dtype | 304 | 2 |")
    assert lines[7].startswith("| `j5` | isbi2014, fp32 | 304 | 3 |")
    assert lines[8] == lines[2].replace("j0", "j6")  # bf16 is the CPU norm: no mark


def test_every_block_of_the_real_document_has_a_source() -> None:
    text = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    names = {line[len("<!-- begin "):-len(" -->")] for line in text.splitlines() if line.startswith("<!-- begin ")}
    jobs = {n for n in names if bench_docs.JOB_BLOCK.match(f"<!-- begin {n} -->")}
    assert names - jobs == set(bench_docs.RENDERERS) | {"ablation_summary"}
    assert all((RESULTS / n / f"{n.split('/')[0]}.md").exists() for n in jobs)


def test_train_cli_and_profile_tables() -> None:
    d = {"preset": "isbi2014", "iters": 40, "rounds": 2, "skip": 5,
         "arms": {"gains": {"sets": ["model.variant=gains"], "median_step_s": 1.1, "images_per_s": 1.818, "steps": 70},
                  "maskrcnn": {"sets": ["model.variant=maskrcnn"], "median_step_s": 1.0, "images_per_s": 2.0,
                               "steps": 70}},
         "gains/maskrcnn": 1.1}
    lines = bench_docs.train_cli(d)
    assert lines[2] == "| gains | `model.variant=gains` | 1.100 | 1.82 | 70 |"
    assert lines[-1].endswith("first 5 iterations of each run left out. gains/maskrcnn 1.10x.")
    for a, wait in zip(d["arms"].values(), (1.4, 1.2), strict=True):
        a["median_iteration_s"], a["images_per_s_with_data"] = wait, 2 / wait
    lines = bench_docs.train_cli(d)
    assert lines[0].endswith("| with data wait s | images/s with it | steps |")
    assert lines[3] == "| maskrcnn | `model.variant=maskrcnn` | 1.000 | 2.00 | 1.200 | 1.67 | 70 |"
    d["arms"]["gains"]["amp"] = "none"  # a precision column once an arm records it; the CPU in the footnote
    d["cpu"] = {"model": "AMD EPYC", "cores": 2, "capability": "AVX2", "native_bf16": False}
    lines = bench_docs.train_cli(d)
    assert lines[0].startswith("| arm | settings (over the preset) | precision | median step s |")
    assert lines[2].startswith("| gains | `model.variant=gains` | fp32 | 1.100 |")
    assert lines[3].startswith("| maskrcnn | `model.variant=maskrcnn` | not recorded | 1.000 |")
    assert lines[-1].endswith("gains/maskrcnn 1.10x. AMD EPYC, 2 cores, torch capability AVX2, no native bf16.")
    arm = {"median_s": {"data": 0.1, "anomaly bwd": 0.5}, "parts_step_s": 2.0, "plain_step_s": 2.1}
    prof = bench_docs.profile({"preset": "isbi2014", "weights": "none", "steps": 8, "threads": 2, "torch": "2.x",
                               "arms": {"gains": arm}})
    assert prof[3] == "| anomaly bwd | 0.500 (25%) |" and prof[-3] == "| uncut step | 2.100 |"
    assert prof[-1] == "isbi2014, from scratch, median of 8 steps, 2 threads, torch 2.x."


def test_train_options_table_compares_each_candidate_with_nchw() -> None:
    d = {"size": 384, "batch": 2, "rois": 32, "repeat": 5, "threads": 2, "compile_first_call_s": 63.2,
         "seconds": {"backbone+fpn, NCHW": 0.3, "backbone+fpn, channels-last": 0.375, "heads, NCHW": 0.2}}
    lines = bench_docs.train_options(d)
    assert lines[3] == "| backbone+fpn, channels-last | 0.375 | 1.25x |"
    assert lines[4] == "| heads, NCHW | 0.200 | 1.00x |"
    assert lines[-1].endswith("2 threads; `torch.compile`'s first call took 63 s (compilation, or loading it from "
                              "inductor's on-disk cache).")


def test_mosaic_table_has_a_row_per_prediction_and_states_the_caps() -> None:
    row = {"segm/AP": 0.25, "segm/AP50": 0.5, "aji_gains": 0.4, "predicted": 40, "scale_line": "scale 1.5 (rule)"}
    d = {"model": "nuclei", "data": "/tmp/x/test_cluster.json", "grid": [3, 3], "mosaic": [768, 960], "tile": 512,
         "overlap": 64, "max_dets_per_scene": 400,
         "rows": {"scenes alone": row, "mosaic whole": {**row, "predicted": 38}}}
    lines = bench_docs.mosaic(d)
    assert lines[2] == "| scenes alone | 0.250 | 0.500 | 0.400 | 40 |" and lines[3].endswith("| 38 |")
    assert lines[-1] == ("`nuclei` on 9 held-out scenes of `test_cluster.json`, as a 3 x 3 mosaic of 960 x 768 px; "
                         "tiled with tile 512, overlap 64 (network pixels); AP over at most 400 detections per scene "
                         "(3600 for the mosaic). Scale: scale 1.5 (rule).")
    assert bench_docs.mosaic({**d, "repeat": True})[-1].startswith("`nuclei` on one held-out scene of ")
