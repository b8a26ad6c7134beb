"""Every shipped preset loads; config overrides and errors behave."""

from __future__ import annotations

from pathlib import Path

import pytest

from gains import zoo
from gains.config import config_from_dict, dump_config, load_config
from gains.errors import InputError
from gains.presets import preset_names

# the user presets (package data, by name) and the benchmark-only configs beside the checkout (by path)
CONFIGS = [*preset_names(), *sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))]


def test_all_presets_are_shipped() -> None:
    names = set(preset_names())
    assert {"isbi2014", "chromosome", "dsb2018_cluster", "synthetic_overlap_cpu", "synthetic_touch_cpu",
            "synthetic_cross_cpu", "isbi2014_cpu", "dsb2018_cluster_cpu", "synthetic_overlap", "synthetic_touch",
            "synthetic_cross", "synthetic_thin_cpu", "synthetic_thin"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: Path(p).stem)
def test_preset_loads_and_round_trips(path: str | Path) -> None:
    import yaml

    cfg = load_config(path)
    assert config_from_dict(yaml.safe_load(dump_config(cfg))) == cfg
    if Path(path).stem.endswith("_cpu"):
        assert cfg.train.device == "cpu" and cfg.model.norm == "gn"
        # from scratch, except a zoo model fine-tuned from another shipped model (zoo_overlap_cpu: from nuclei)
        assert cfg.model.weights == "none" or (Path(path).stem.startswith("zoo_") and zoo.is_name(cfg.model.weights))
    elif Path(path).stem.startswith("zoo_"):  # a zoo model's GPU reproduction (tests/test_zoo_reproduce.py)
        assert cfg.train.device == "cuda" and cfg.train.max_minutes is not None and cfg.model.norm == "gn"
    else:
        assert cfg.train.lr == 0.015 and cfg.train.steps == [15000, 18000] and cfg.train.max_iters == 20000


def test_overrides_and_errors(tmp_path: Path) -> None:
    cfg = load_config(None, ["model.variant=maskrcnn", "train.max_iters=200", "train.clip_grad_norm=null",
                             "model.min_size_train=[256, 288]", "train.lr=1"])
    assert (cfg.model.variant, cfg.train.max_iters, cfg.train.clip_grad_norm) == ("maskrcnn", 200, None)
    assert cfg.model.min_size_train == [256, 288] and cfg.train.lr == 1.0
    for bad, msg in [("train.nope=1", "unknown key"), ("train.lr=abc", "expected float"), ("nokey", "section.key"),
                     ("model.min_size_train=3", "expected a list")]:
        with pytest.raises(InputError, match=msg):
            load_config(None, [bad])
    (tmp_path / "c.yaml").write_text("train:\n  max_iter: 5\n")
    with pytest.raises(InputError, match=r"c.yaml: train: unknown key 'max_iter'"):
        load_config(tmp_path / "c.yaml")


def test_cpu_presets_narrow_the_anomaly_branch_and_reference_presets_keep_its_width() -> None:
    for name in preset_names():
        cfg = load_config(name)
        cpu = name.endswith("_cpu")
        assert cfg.model.anomaly_channels == (96 if cpu else 256), name
        assert cfg.model.fusion_kernel == (1 if cpu else 3), name


def test_reference_presets_and_isbi2014_cpu_feed_8_bit_values_unstretched() -> None:
    # the reference subtracts a fixed pixel mean; the user default stays the percentile stretch
    for name in ("isbi2014", "chromosome", "dsb2018_cluster", "isbi2014_cpu"):
        assert load_config(name).model.input_norm == "dtype", name
    assert load_config(None).model.input_norm == "percentile"


def test_gamm_options_beyond_the_reference_reach_the_ga_maps() -> None:
    from gains.engine.train import gamm_params

    ref = gamm_params(load_config("dsb2018_cluster_cpu"))
    assert (ref.every_category, ref.zero_maps) == (False, "ones")
    changed = gamm_params(load_config("dsb2018_cluster_cpu", ["gamm.every_category=true", "gamm.zero_maps=keep"]))
    assert (changed.every_category, changed.zero_maps, changed.window_size) == (True, "keep", 8)
