"""benchmarks.accuracy: harness, sensitivity and tuning: schedules scaled to a budget, per-run configs, the GAMM grid,
the tuning candidates."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.accuracy import harness, sensitivity, tuning
from gains.config import load_config


def test_with_iterations_scales_steps_and_caps_warmup() -> None:
    base = load_config("synthetic_touch_cpu")  # 600 iterations, steps 450/550, warm-up 100
    cfg = harness.with_iterations(base, 60)
    assert (cfg.train.max_iters, cfg.train.steps, cfg.train.warmup_iters) == (60, [45, 55], 60)
    assert cfg.train.eval_period == cfg.train.checkpoint_period == 60
    assert harness.with_iterations(base, 1200).train.steps == [900, 1100]


def test_budget_iterations_fit_the_minutes_left() -> None:
    # 10 minutes, 60 s already spent, 15% kept for evaluation, 2 s per probed iteration of all runs together
    assert harness.budget_iterations(10, 60, 2.0) == int(540 * 0.85 / (2.0 * harness.LATE_STEP_FACTOR))
    with pytest.raises(SystemExit, match="too short"):
        harness.budget_iterations(1, 50, 2.0)


def test_run_config_changes_variant_seed_and_overrides_only() -> None:
    base = load_config("synthetic_overlap_cpu")
    cfg = harness.run_config(base, "maskrcnn", 3, ["gamm.anchor=center"])
    assert (cfg.model.variant, cfg.train.seed, cfg.gamm.anchor) == ("maskrcnn", 3, "center")
    assert cfg.data == base.data and cfg.train.max_iters == base.train.max_iters


def test_sensitivity_grid_parsing_and_defaults() -> None:
    assert sensitivity.parse_grid(["gamm.window_size=3,9", "gamm.anchor=center", "gamm.every_category=true",
                                   "model.mask_loss_weight=1.0"]) == {
        "gamm.window_size": [3, 9], "gamm.anchor": ["center"], "gamm.every_category": [True],
        "model.mask_loss_weight": [1.0]}
    with pytest.raises(SystemExit, match=r"expected gamm\.KEY=V1,V2"):
        sensitivity.parse_grid(["train.lr=0.1"])
    assert "gamm.overlap_hl" not in sensitivity.GRIDS["nuclei"]  # the nuclei variant never applies it


def test_sensitivity_run_folders_keep_settings_and_the_noise_run_apart() -> None:
    names = [sensitivity.run_name(s, 0) for s in ("preset", sensitivity.NOISE, "gamm.window_size=3",
                                                  "model.mask_loss_weight=1.0")]
    assert names == ["preset_s0", f"preset_s{sensitivity.NOISE_SEED_OFFSET}", "window_size_3_s0",
                     "model.mask_loss_weight_1.0_s0"]


@pytest.mark.parametrize("preset", sorted(harness.PRESETS))
def test_every_preset_has_a_cpu_and_a_gpu_config(preset: str) -> None:
    cpu = load_config(f"{harness.PRESETS[preset]}_cpu")
    gpu = load_config(harness.PRESETS[preset])
    assert cpu.gamm.variant == gpu.gamm.variant and cpu.data.synthetic == gpu.data.synthetic
    assert (cpu.model.backbone, gpu.model.backbone, gpu.train.max_iters) == ("resnet18", "resnet50", 20000)


def test_a_budgeted_job_reuses_its_chosen_iterations(tmp_path, monkeypatch) -> None:
    import argparse
    import json

    from gains.config import apply_overrides

    args = argparse.Namespace(preset="synthetic-touch", iters=None, budget_minutes=45.0, seeds=[0, 1],
                              overrides=["train.lr=0.01"], gpu=False, device="cpu")
    base = load_config("synthetic_touch_cpu")
    probes = {"gains": base, "maskrcnn": harness.run_config(base, "maskrcnn", 0)}
    probed = []
    monkeypatch.setattr(harness, "seconds_per_iteration",
                        lambda configs, folder: probed.append(sorted(configs)) or {"gains": 9.0})
    monkeypatch.setattr(harness, "budget_iterations", lambda minutes, elapsed, per_round: 77)
    assert harness.choose_iterations(args, probes, 2, tmp_path, 0.0) == (77, {"gains": 9.0}) and probed
    saved = json.loads((tmp_path / "budget.json").read_text())
    (tmp_path / "budget.json").write_text(json.dumps({**saved, "iters": 321, "probe": {"gains": 1.5}}))
    probed.clear()
    assert harness.choose_iterations(args, probes, 2, tmp_path, 0.0) == (321, {"gains": 1.5}) and not probed
    changed = {**probes, "gains": apply_overrides(base, ["model.max_size=640"])}  # another preset: probed again
    assert harness.choose_iterations(args, changed, 2, tmp_path, 0.0) == (77, {"gains": 9.0}) and probed
    fixed = argparse.Namespace(**{**vars(args), "iters": 50, "budget_minutes": None})
    assert harness.choose_iterations(fixed, probes, 2, tmp_path, 0.0) == (50, None)


@pytest.mark.parametrize("preset", ["isbi2014", "dsb2018-cluster"])
def test_real_data_presets_stop_with_a_clear_message_without_the_data(tmp_path, monkeypatch, preset: str) -> None:
    monkeypatch.setattr(harness, "SHARED", tmp_path / "absent")
    with pytest.raises(SystemExit, match=rf"absent/data/\w+: not available; the {preset} preset needs the shared data"):
        harness.prepare_real_data(preset, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_mean_std_leaves_missing_contact_metrics_nan() -> None:
    runs = [{k: 0.5 for k in harness.SUMMARY}, {**{k: 0.25 for k in harness.SUMMARY}, "contact_iou": None}]
    table = harness.mean_std(runs)
    assert table["segm/AP"] == {"mean": 0.375, "std": 0.125} and np.isnan(table["contact_iou"]["mean"])


def test_per_category_mean_and_spread() -> None:
    runs = [{"per_category": {"cell": {k: v for k in harness.SUMMARY}, "nucleus": {k: 0.0 for k in harness.SUMMARY}}}
            for v in (0.25, 0.75)]
    table = harness.per_category(runs)
    assert sorted(table) == ["cell", "nucleus"]
    assert table["cell"]["segm/AP"] == {"mean": 0.5, "std": 0.25}
    assert harness.spread(table["cell"]["aji_gains"]) == "0.5000 ± 0.2500"


def test_read_eval_and_step_seconds(tmp_path) -> None:
    import json

    run = tmp_path / "gains_s0"
    (run / "eval").mkdir(parents=True)
    with pytest.raises(SystemExit, match=r"gains_s0/eval: no finished evaluation"):
        harness.read_eval(run)
    (run / "eval" / "METRICS.json").write_text(json.dumps({"segm/AP": 0.5}))
    header = "image_id,file_name,category," + ",".join(harness.PAIRED)
    rows = ["7,a.png,cell," + ",".join(["0.25"] * len(harness.PAIRED)),
            "8,b.png,cell," + ",".join(["0.5"] * (len(harness.PAIRED) - 2) + ["nan", "nan"])]  # no contact instance
    (run / "eval" / "METRICS_per_image.csv").write_text("\n".join([header, *rows]) + "\n")
    metrics, images = harness.read_eval(run)
    assert metrics == {"segm/AP": 0.5} and images[("7", "cell")] == dict.fromkeys(harness.PAIRED, 0.25)
    assert np.isnan(images[("8", "cell")]["contact_iou"]) and images[("8", "cell")]["aji"] == 0.5
    old = "image_id,file_name,category,aji_gains\n9,c.png,cell,0.75\n"  # an evaluation from before the contact metrics
    (run / "eval" / "METRICS_per_image.csv").write_text(old)
    assert harness.read_eval(run)[1][("9", "cell")]["aji_gains"] == 0.75
    lines = [{"iter": 0, "time": 1.5}, {"iter": 1, "time": 2.0}, {"iter": 1, "split": "val", "segm/AP": 0.1}]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert harness.step_seconds(run) == 3.5
    assert harness.iteration_times(run) == [1.5, 2.0]  # a run from before data_s: the step alone
    lines[1]["data_s"] = 0.25
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert harness.iteration_times(run) == [1.5, 2.25] and harness.step_seconds(run) == 3.5


def test_a_finished_run_is_kept_for_other_scoring_and_restarted_for_other_training(tmp_path, monkeypatch) -> None:
    import json

    from gains.config import apply_overrides, dump_config
    from gains.engine import train

    base = load_config("synthetic_touch_cpu")
    run = tmp_path / "run"
    fitted = []

    def fake_fit(cfg, folder, resume, progress) -> None:
        fitted.append(folder.exists())
        folder.mkdir(exist_ok=True)
        lines = [{"iter": 0, "time": 40.0}, {"iter": 1, "time": 2.5}] if fitted[-1] else [{"iter": 0, "time": 1.0}]
        (folder / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")

    monkeypatch.setattr(train, "fit", fake_fit)
    for overrides, kept in ((["eval.score_thresh=0.3", "eval.max_dets=400"], True), (["train.lr=0.5"], False)):
        run.mkdir(exist_ok=True)
        (run / "config.yaml").write_text(dump_config(base))
        (run / "last.pt").write_bytes(b"weights")
        seconds = harness.train_or_resume(apply_overrides(base, overrides), run)
        assert fitted.pop() is kept
        # a kept run's time is its step times (trained earlier), a fresh run's the wall time of this call
        assert seconds == 42.5 if kept else seconds < 40.0


def test_tuning_candidates_scale_the_presets_own_values() -> None:
    from gains.config import apply_overrides

    base = load_config("isbi2014_cpu",
                       ["model.min_size_train=[256, 288, 320]", "model.min_size_test=288", "model.max_size=320",
                        "model.anchor_sizes=[32, 64, 128, 256, 512]"])
    cands = tuning.candidates(base)
    small = apply_overrides(base, cands["images x0.75"]).model
    large = apply_overrides(base, cands["images x1.33"]).model
    assert (small.min_size_train, small.min_size_test, small.max_size) == ([192, 224, 256], 224, 256)
    assert (large.min_size_train, large.min_size_test, large.max_size) == ([352, 384, 416], 384, 416)
    assert apply_overrides(base, cands["anchors /4"]).model.anchor_sizes == [8, 16, 32, 64, 128]
    assert apply_overrides(base, cands["ga_rois_per_image 8"]).model.ga_rois_per_image == 8
    touch = load_config("dsb2018_cluster_cpu")  # anchors from 8 px: none smaller offered
    assert "anchors /4" not in tuning.candidates(touch)


def test_tuning_settings_parse_and_name_folders() -> None:
    assert tuning.parse_setting("small=model.max_size=256;model.min_size_test=224") == (
        "small", ["model.max_size=256", "model.min_size_test=224"])
    for bad in ("nothing", "name=", "name=novalue"):
        with pytest.raises(SystemExit, match="expected NAME=KEY=VALUE;KEY=VALUE"):
            tuning.parse_setting(bad)
    assert tuning.slug("ga_rois_per_image 8") == "ga_rois_per_image_8" and tuning.slug("anchors /4") == "anchors_4"
    assert tuning.slug("images x0.75") == "images_x0.75"


def test_time_budget_keeps_the_schedule_fractions_and_a_cap_no_model_reaches() -> None:
    base = harness.with_iterations(load_config("synthetic_overlap_cpu"), 600)  # steps [450, 550], warm-up 100
    cfg = harness.with_time_budget(base, 5.0, fastest_s_per_iter=0.5)
    assert cfg.train.max_minutes == 5.0
    assert cfg.train.max_iters == 1200  # 2 x the 600 iterations the fastest model would reach in 5 minutes
    assert cfg.train.steps == [900, 1100] and cfg.train.warmup_iters == 200
    assert cfg.train.checkpoint_period == 1200
    probe = {"gains": 1.5, "maskrcnn": 1.0}
    assert harness.run_minutes(100, probe) == pytest.approx(100 * 1.25 * harness.LATE_STEP_FACTOR / 60)


def test_parse_arm_names_a_set_of_overrides() -> None:
    assert harness.parse_arm("fast:model.box_batch_size_per_image=64,model.ga_rois_per_image=8") == (
        "fast", ["model.box_batch_size_per_image=64", "model.ga_rois_per_image=8"])
    assert harness.parse_arm("preset:") == ("preset", [])
    for bad in (":model.x=1", "name:novalue"):
        with pytest.raises(SystemExit, match="expected NAME:KEY=VALUE"):
            harness.parse_arm(bad)


def test_reached_iterations_reads_the_train_summary(tmp_path) -> None:
    (tmp_path / "train_summary.json").write_text('{"iterations": 137, "stop_reason": "max_minutes"}')
    assert harness.reached_iterations(tmp_path) == 137


def test_settings_paired_rows_name_each_setting_and_metric() -> None:
    stat = {"mean": -0.02, "ci_low": -0.04, "ci_high": -0.003, "wins": 3, "losses": 12, "sign_p": 0.0352}
    lines = harness.settings_paired_rows({"anchors /4": {"aji_gains": stat, "aji": {}, "pq": stat,
                                                         "contact_iou": stat | {"mean": 0.01}}})
    assert lines[0] == "" and "against preset" in lines[1]
    assert lines[3:] == ["| anchors /4: aji_gains | -0.0200 | [-0.0400, -0.0030] | 3/12 | 0.0352 |",
                         "| anchors /4: contact_iou | +0.0100 | [-0.0400, -0.0030] | 3/12 | 0.0352 |"]


def _fake_run(run, segm_ap: float, aji: dict[str, float], step_s: float) -> None:
    import json

    (run / "eval").mkdir(parents=True)
    (run / "eval" / "METRICS.json").write_text(json.dumps(dict.fromkeys(harness.SUMMARY, segm_ap)))
    header = "image_id,file_name,category," + ",".join(harness.PAIRED)
    rows = [f"{i},{i}.png,cell," + ",".join([str(v)] * len(harness.PAIRED)) for i, v in aji.items()]
    (run / "eval" / "METRICS_per_image.csv").write_text("\n".join([header, *rows]) + "\n")
    (run / "metrics.jsonl").write_text(json.dumps({"iter": 0, "time": step_s}) + "\n")


def test_compare_jobs_pairs_the_same_variant_and_seed(tmp_path) -> None:
    from benchmarks.accuracy import compare_jobs
    for seed in (0, 1):
        _fake_run(tmp_path / "a" / f"gains_s{seed}", 0.4, {"1": 0.5, "2": 0.5, "3": 0.5}, 2.0)
        _fake_run(tmp_path / "b" / f"gains_s{seed}", 0.6, {"1": 0.75, "2": 0.75, "3": 0.25}, 1.0)
    result, lines = compare_jobs.compare(tmp_path / "a", tmp_path / "b", ("before", "after"), [0, 1])
    assert list(result["variants"]) == ["gains"]  # no maskrcnn runs in either job
    g = result["variants"]["gains"]
    assert g["summary"]["after"]["segm/AP"]["mean"] == pytest.approx(0.6)
    aji = g["paired_per_image"]["aji"]
    assert aji["mean"] == pytest.approx((0.25 + 0.25 - 0.25) / 3) and (aji["wins"], aji["losses"]) == (4, 2)
    assert g["step_seconds"] == {"before": [2.0, 2.0], "after": [1.0, 1.0]}
    assert lines[0].startswith("**gains** (seeds [0, 1]; summed step time per run: before 2 s, after 1 s)")
    with pytest.raises(SystemExit, match="no variant has finished"):
        compare_jobs.compare(tmp_path / "a", tmp_path / "b", ("before", "after"), [0, 1, 2])


def test_profile_table_gives_each_part_its_share_of_the_step() -> None:
    from benchmarks.speed import profile_step
    median = dict.fromkeys(profile_step.PARTS, 0.0) | {"data": 0.5, "anomaly bwd": 0.25, "mask branch bwd": 0.75}
    lines = profile_step.table({"gains": {"median_s": median, "parts_step_s": 1.0, "plain_step_s": 1.1}})
    assert lines[0] == "| part | gains |"
    assert "| anomaly bwd | 0.250 (25%) |" in lines and "| mask branch bwd | 0.750 (75%) |" in lines
    assert lines[-2:] == ["| sum of parts (no data) | 1.000 |", "| uncut step | 1.100 |"]


def test_mean_ga_weight_of_overlapping_scenes_lies_in_the_isbi_range(tmp_path) -> None:
    from gains.engine.train import gamm_params

    cfg = load_config("synthetic_overlap_cpu", ["data.synthetic_train=2", "data.synthetic_size=64"])
    mean = harness.mean_ga_weight(cfg, tmp_path / "w")
    # ISBI maps are 1 + ga_factor x (anomaly in [0, 1]); overlapping cells light some pixels up
    assert 1.0 < mean < 1.0 + gamm_params(cfg).ga_factor
    assert not (tmp_path / "w").exists()
    assert harness.mean_ga_weight(cfg, tmp_path / "again") == mean  # the same scenes, the same maps


def test_ablation_report_has_a_column_per_model_and_the_matched_arm_pairs() -> None:
    import argparse

    from benchmarks.accuracy import ablation
    stat = {"mean": 0.5, "std": 0.0}
    models = ("gains", "maskrcnn", ablation.MATCHED)
    diff = {"aji": {"mean": 0.01, "ci_low": -0.01, "ci_high": 0.03, "wins": 5, "losses": 4, "sign_p": 1.0}}
    result = {"summary": {m: dict.fromkeys(harness.SUMMARY, stat) for m in models},
              "per_category": {m: {"cell": dict.fromkeys(harness.SUMMARY, stat)} for m in models},
              "train_s": {m: [100.0, 120.0] for m in models}, "iters": {m: [304, 304] for m in models},
              "matched": {"mean_ga_weight": 1.04, "mask_loss_weight": 0.9615, "reference_mean_weight": 0.78},
              "paired_per_image": diff, "paired_more": {f"{ablation.MATCHED} - maskrcnn": diff}, "amp": "bf16"}
    args = argparse.Namespace(preset="isbi2014", equal_time=False, seeds=[0, 1], overrides=[], report_only=True)
    base = load_config("isbi2014_cpu")
    lines = ablation.report(args, "isbi2014_cpu", base, base, result, 0.0)
    assert lines[0].startswith("### isbi2014 (isbi2014_cpu, 304 iterations, amp bf16, seeds [0, 1])")
    assert "110 s per gains-matched run" in lines[2]
    assert "| metric | gains | maskrcnn | gains-matched |" in lines
    assert any("uses 0.962 (mean weight 1.0" in ln for ln in lines)
    assert sum(ln.startswith("| per-image paired difference") for ln in lines) == 2


def test_bench_train_cli_runs_an_arm_with_another_checkouts_code(tmp_path, monkeypatch) -> None:
    from benchmarks.speed import bench_train_cli as cli
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    old = tmp_path / "old"
    (old / "src" / "gains").mkdir(parents=True)
    assert cli.code_of("isbi2014_cpu", old)[0] == "isbi2014_cpu"  # presets by name in that checkout
    (old / "configs").mkdir()
    (old / "configs" / "isbi2014_cpu.yaml").write_text("model: {}\n")
    config, env = cli.code_of("isbi2014_cpu", old)
    assert config == str(old / "configs" / "isbi2014_cpu.yaml")
    assert env["PYTHONPATH"].split(":") == [str(old / "src"), "/elsewhere"]
    assert cli.code_of("isbi2014_cpu", None)[1]["PYTHONPATH"] == "/elsewhere"
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("train: {amp: bf16}\n")
    assert cli.amp_of(run) == "bf16"  # code from before train_summary.json recorded it: its config's mode
    (run / "config.yaml").write_text("train: {amp: auto}\n")
    assert cli.amp_of(run) is None  # "auto" is no mode
    (run / "train_summary.json").write_text('{"amp": "none"}')
    assert cli.amp_of(run) == "none"
    for bad in (f"nosuch={old}", f"gains={tmp_path / 'missing'}"):
        with pytest.raises(SystemExit) as exc:
            cli.main(["--preset", "synthetic-overlap", "--arm", "gains:model.variant=gains", "--tree", bad])
        assert exc.value.code == 2
