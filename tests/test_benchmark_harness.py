"""benchmarks/harness.py, sensitivity.py and tuning.py: schedules scaled to a budget, per-run configs, the GAMM
grid, the tuning candidates."""

from __future__ import annotations

import sys

import pytest

from gains.config import load_config
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
harness = pytest.importorskip("harness")
sensitivity = pytest.importorskip("sensitivity")
tuning = pytest.importorskip("tuning")


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
    assert sensitivity.parse_grid(["gamm.window_size=3,9", "gamm.anchor=center"]) == {
        "gamm.window_size": [3, 9], "gamm.anchor": ["center"]}
    with pytest.raises(SystemExit, match=r"expected gamm\.KEY=V1,V2"):
        sensitivity.parse_grid(["train.lr=0.1"])
    assert "gamm.overlap_hl" not in sensitivity.GRIDS["nuclei"]  # the nuclei variant never applies it


def test_sensitivity_run_folders_keep_settings_and_the_noise_run_apart() -> None:
    names = [sensitivity.run_name(s, 0) for s in ("preset", sensitivity.NOISE, "gamm.window_size=3")]
    assert names == ["preset_s0", f"preset_s{sensitivity.NOISE_SEED_OFFSET}", "window_size_3_s0"]


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
    (run / "eval" / "METRICS_per_image.csv").write_text(header + "\n7,a.png,cell," + ",".join(["0.25"] * 6) + "\n")
    metrics, images = harness.read_eval(run)
    assert metrics == {"segm/AP": 0.5} and images == {("7", "cell"): dict.fromkeys(harness.PAIRED, 0.25)}
    lines = [{"iter": 0, "time": 1.5}, {"iter": 1, "time": 2.0}, {"iter": 1, "split": "val", "segm/AP": 0.1}]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert harness.step_seconds(run) == 3.5


def test_a_finished_run_is_kept_for_other_scoring_and_restarted_for_other_training(tmp_path, monkeypatch) -> None:
    from gains.config import apply_overrides, dump_config
    from gains.engine import train

    base = load_config("synthetic_touch_cpu")
    run = tmp_path / "run"
    fitted = []
    monkeypatch.setattr(train, "fit", lambda cfg, folder, resume, progress: fitted.append(folder.exists()))
    for overrides, kept in ((["eval.score_thresh=0.3", "eval.max_dets=400"], True), (["train.lr=0.5"], False)):
        run.mkdir(exist_ok=True)
        (run / "config.yaml").write_text(dump_config(base))
        (run / "last.pt").write_bytes(b"weights")
        harness.train_or_resume(apply_overrides(base, overrides), run)
        assert fitted.pop() is kept


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


def test_equal_time_iterations_give_every_model_the_same_time_and_total() -> None:
    probe = {"gains": 1.5, "maskrcnn": 1.0}  # seconds per iteration
    per = harness.equal_time_iterations(100, probe)
    assert per == {"gains": 83, "maskrcnn": 125}
    assert abs(per["gains"] * 1.5 - per["maskrcnn"] * 1.0) <= 1.5  # same training time, to one step
    assert abs(sum(per[v] * probe[v] for v in probe) - 100 * sum(probe.values())) <= sum(probe.values())


def test_settings_paired_rows_name_each_setting_and_metric() -> None:
    stat = {"mean": -0.02, "ci_low": -0.04, "ci_high": -0.003, "wins": 3, "losses": 12, "sign_p": 0.0352}
    lines = harness.settings_paired_rows({"anchors /4": {"aji_gains": stat, "aji": {}, "pq": stat}})
    assert lines[0] == "" and "against preset" in lines[1]
    assert lines[3:] == ["| anchors /4: aji_gains | -0.0200 | [-0.0400, -0.0030] | 3/12 | 0.0352 |"]
