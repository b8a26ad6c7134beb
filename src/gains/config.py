"""Typed, frozen configuration: one dataclass per concern, YAML in and out, ``--set key=value`` overrides.

Unknown keys are rejected with the full dotted name. Only builders read these objects; everything
below them takes plain arguments.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gains.errors import InputError
from gains.intensity import LEGACY_MODE
from gains.presets import resolve_config

if TYPE_CHECKING:
    from gains.gamm.params import GammParams


@dataclass(frozen=True)
class DataConfig:
    """Where images and annotations come from and how they are augmented.

    Either ``train``/``val`` (COCO JSON files; images beside them in ``images/`` unless ``images`` is
    set) or ``synthetic`` (overlap | touch | cross | thin scenes generated into the run folder).
    """

    train: str | None = None
    val: str | None = None
    test: str | None = None
    images: str | None = None
    synthetic: str | None = None
    synthetic_train: int = 40
    synthetic_val: int = 10
    synthetic_size: int = 256
    seed: int = 0
    hflip: float = 0.5
    vflip: float = 0.0
    rot90: float = 0.0
    jitter: bool = False
    keep_empty: bool = False
    num_workers: int = 0
    # patch training (gains.data.patch): each sample a crop_size x crop_size window (network pixels) of its image at
    # the model's scale (model.test_scale); null: whole images resized to model.min_size_train
    crop_size: int | None = None
    crop_focus: float = 0.8  # probability of a window centred on a random instance (else placed uniformly)
    # probability of a window centred where a random pair of instances overlaps or touches (taken before
    # crop_focus; an image with no such pair falls back to crop_focus)
    crop_contacts: float = 0.0
    crop_min_area: int = 16  # network pixels an instance cut by the window needs to stay a target


@dataclass(frozen=True)
class GammConfig:
    """GA-map parameters (see ``gains.gamm.GammParams``); ``store`` reuses a ``gains gamm`` store."""

    variant: str = "isbi"
    window_size: int | None = None
    ga_factor: float | None = None
    overlap_hl: float | None = None
    target_category: int | None = None
    anchor: str = "topleft"
    every_category: bool = False  # maps for every category, each as the target in turn (reference: one category)
    zero_maps: str = "ones"  # ones | keep: the nuclei script's all-zero maps replaced by ones, or kept (reference)
    store: str | None = None

    def params(self) -> GammParams:
        """The ``GammParams`` of these settings (the variant's defaults where unset).

        Raises:
            InputError: a setting ``GammParams`` refuses.
        """
        from gains.gamm.params import GammParams

        return GammParams.for_variant(self.variant, window_size=self.window_size, ga_factor=self.ga_factor,
                                      overlap_hl=self.overlap_hl, target_category=self.target_category,
                                      anchor=self.anchor, every_category=self.every_category, zero_maps=self.zero_maps)


@dataclass(frozen=True)
class ModelConfig:
    """Mask R-CNN / GAInS architecture, heads and inference settings."""

    variant: str = "gains"
    backbone: str = "resnet50"
    norm: str = "frozen_bn"
    weights: str = "none"
    weights_heads: bool = True  # also load the RoI heads from model.weights (False: backbone, FPN and RPN only)
    trainable_layers: int = 3
    num_classes: int | None = None
    mask_loss_weight: float | None = None
    ga_loss_weight: float = 1.0
    predict_ga_maps: bool = True
    ga_rois_per_image: int | None = 32
    # width of the guidance fusion's output and the anomaly branch's convs: 256 is the reference; fewer make the
    # branch cheaper (its cost grows with the square of the width)
    anomaly_channels: int = 256
    # side of the guidance fusion's conv: 3 is the reference; 1 fuses per pixel, a third less work in the branch
    fusion_kernel: int = 3
    min_size_train: list[int] = field(default_factory=lambda: [640, 672, 704, 736, 768, 800])
    min_size_test: int = 800
    max_size: int = 1333
    # test-time rule: every image scaled by test_scale whatever its size (filled in by training from the training
    # set, see gains.data.stats.training_scale); None: each image resized to min_size_test (the rule before)
    test_scale: float | None = None
    object_size: float | None = None  # median object diameter (px) the model saw at test_scale; --object-size
    input_norm: str = "percentile"  # percentile | dtype | fixed (gains.intensity); saved configs without it: dtype
    input_percentiles: list[float] = field(default_factory=lambda: [1.0, 99.8])
    input_range: list[float] | None = None  # [min, max] raw values for input_norm: fixed
    image_mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    image_std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    anchor_sizes: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])
    aspect_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    detections_per_img: int = 100
    mask_pool_size: int = 14
    roi_aligned: bool = True
    # how CPU training pools RoI features: gather (gains.models.roi_pool, torchvision's numbers, faster backward)
    # | torchvision (its op everywhere); inference, exports and CUDA always use torchvision's op
    roi_pool: str = "gather"


# what each autocast mode of ``train.amp`` computes in, as logs and reports name it ("auto" resolves to one of these)
PRECISION_NAMES = {"none": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 mixed precision"}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule and run mechanics."""

    device: str = "auto"
    max_iters: int = 20000
    max_minutes: float | None = None  # wall-clock budget; the LR schedule then runs on its elapsed fraction
    batch_size: int = 1
    lr: float = 0.015
    momentum: float = 0.9
    weight_decay: float = 1e-4
    weight_decay_norm: float = 0.0
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    steps: list[int] = field(default_factory=lambda: [15000, 18000])
    gamma: float = 0.1
    clip_grad_norm: float | None = None
    amp: str = "none"
    seed: int = 0
    checkpoint_period: int = 1000
    eval_period: int = 1000
    log_period: int = 20
    # intra-op CPU threads of training (torch.set_num_threads); 0: auto, one per core no other process keeps busy
    # (gains.engine.threads; docs/BENCHMARKS.md "Training threads on a shared machine")
    threads: int = 0


@dataclass(frozen=True)
class EvalConfig:
    """Scoring settings (see ``gains score``)."""

    score_thresh: float = 0.5
    max_dets: int = 100


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    gamm: GammConfig = field(default_factory=GammConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


@dataclass(frozen=True)
class Limit:
    """The range of a numeric setting: ``value >= low`` (``> low`` when ``open_low``) and ``value <= high``."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def problem(self, value: float) -> str | None:
        """What is wrong with ``value`` (None when it lies in the range)."""
        below = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        if not below and (self.high is None or value <= self.high):
            return None
        if self.high is not None:
            return f"must be in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"
        return f"must be {'>' if self.open_low else '>='} {self.low:g}"


_AT_LEAST_1, _NON_NEGATIVE, _POSITIVE = Limit(1), Limit(0), Limit(0, open_low=True)
_FRACTION = Limit(0, 1)
# every bounded number of the config; every float must also be finite (a list's items each obey its limit).
# A period of 0 means "only at the end of the run"; clip_grad_norm 0 means no clipping.
LIMITS: dict[str, Limit] = {
    **dict.fromkeys(["data.synthetic_train", "data.synthetic_val", "model.min_size_train", "model.min_size_test",
                     "model.max_size", "model.num_classes", "model.ga_rois_per_image", "model.anomaly_channels",
                     "model.fusion_kernel", "model.anchor_sizes", "model.rpn_pre_nms_top_n_train",
                     "model.rpn_pre_nms_top_n_test", "model.rpn_post_nms_top_n_train", "model.rpn_post_nms_top_n_test",
                     "model.rpn_batch_size_per_image", "model.box_batch_size_per_image", "model.detections_per_img",
                     "model.mask_pool_size", "train.max_iters", "train.batch_size", "train.log_period",
                     "eval.max_dets"], _AT_LEAST_1),
    **dict.fromkeys(["data.seed", "data.num_workers", "model.mask_loss_weight", "model.ga_loss_weight",
                     "train.weight_decay", "train.weight_decay_norm", "train.warmup_iters", "train.warmup_factor",
                     "train.steps", "train.clip_grad_norm", "train.seed", "train.checkpoint_period",
                     "train.eval_period", "train.threads"], _NON_NEGATIVE),
    **dict.fromkeys(["model.test_scale", "model.object_size", "model.image_std", "model.aspect_ratios",
                     "train.max_minutes", "train.lr", "train.gamma"], _POSITIVE),
    **dict.fromkeys(["data.hflip", "data.vflip", "data.rot90", "model.rpn_nms_thresh", "model.box_score_thresh",
                     "model.box_nms_thresh", "train.momentum", "eval.score_thresh"], _FRACTION),
    "data.synthetic_size": Limit(32),  # gains.data.synth.write_synthetic's smallest scene
    "data.crop_size": Limit(32),  # one cell of the backbone's coarsest (stride 32) feature map
    "data.crop_focus": _FRACTION,
    "data.crop_contacts": _FRACTION,
    "data.crop_min_area": _NON_NEGATIVE,
    "model.trainable_layers": Limit(0, 5),
    "model.box_positive_fraction": Limit(0, 1, open_low=True),
    "model.input_percentiles": Limit(0, 100),
}


def check_limits(cfg: Config) -> None:
    """Refuse out-of-range numbers (``LIMITS``), non-finite floats anywhere, and GA-map settings that
    ``gains.gamm.GammParams`` refuses.

    Raises:
        InputError: ``section.key: must be ..., got VALUE`` (``section.key[i]`` for a list item).
    """
    for section, values in config_to_dict(cfg).items():
        for key, value in values.items():
            name = f"{section}.{key}"
            items = enumerate(value) if isinstance(value, list) else [(None, value)]
            for i, item in items:
                if isinstance(item, bool) or not isinstance(item, (int, float)):
                    continue
                limit = LIMITS.get(name)
                problem = "must be a finite number" if not math.isfinite(item) else limit and limit.problem(item)
                if problem:
                    raise InputError(f"{name}{'' if i is None else f'[{i}]'}: {problem}, got {item!r}")
    cfg.gamm.params()


def _check_type(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` coerced to the annotated type ``tp`` (int -> float allowed), or raise InputError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            with contextlib.suppress(InputError):
                return _check_type(value, arg, where)
        raise InputError(f"{where}: {value!r} is not a {tp}")
    if tp is type(None):
        if value is None:
            return None
        raise InputError(f"{where}: expected null")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and isinstance(value, tp):
        return value
    raise InputError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(f"{where + ': ' if where else ''}expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, f"{where}.{name}" if where else name)
        else:
            kwargs[name] = _check_type(value, tp, f"{where}.{name}" if where else name)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    """A Config from nested dicts (sections data, gamm, model, train, eval), its numbers checked (``check_limits``).

    Raises:
        InputError: an unknown key, a value of the wrong type, or a number out of range, naming the key.
    """
    cfg = _build(Config, data or {}, "")
    check_limits(cfg)
    return cfg


def saved_config(data: dict[str, Any]) -> Config:
    """The Config of a checkpoint or run folder; settings added since it was saved get the value that
    reproduces how it was trained (``model.input_norm``: ``dtype``, the only behaviour before the setting)."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in (data or {}).items()}
    model = data.setdefault("model", {})
    if isinstance(model, dict):
        model.setdefault("input_norm", LEGACY_MODE)
    return config_from_dict(data)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Nested plain dicts (YAML/JSON-ready)."""
    return dataclasses.asdict(cfg)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and where (``... at line 3, column 7``)."""
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or " ".join(str(exc).split())
    return f"{what} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else what


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``section.key=value`` strings; values are parsed as YAML (numbers, lists, null, booleans)."""
    data = config_to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise InputError(f"--set {item!r}: expected section.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or parts[0] not in data:
            raise InputError(f"--set {item!r}: key must be section.key with section in {sorted(data)}")
        if parts[1] not in data[parts[0]]:
            raise InputError(f"--set {item!r}: unknown key '{key}'")
        try:
            data[parts[0]][parts[1]] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise InputError(f"--set {item!r}: not a YAML value ({yaml_problem(exc)})") from exc
    return config_from_dict(data)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a preset name or YAML file (``gains.presets.resolve_config``; the defaults when ``path`` is None)
    and apply ``--set`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        label, text = resolve_config(path)
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{label}: cannot read config ({yaml_problem(exc)})") from exc
        try:
            cfg = config_from_dict(data)
        except InputError as exc:
            raise InputError(f"{label}: {exc}") from exc
    else:
        cfg = Config()
    return apply_overrides(cfg, overrides or [])


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys (``section.key``) whose values differ between two ``config_to_dict`` results."""
    return [f"{section}.{key}" for section in sorted(set(old) | set(new))
            for key in sorted(set(old.get(section, {})) | set(new.get(section, {})))
            if old.get(section, {}).get(key) != new.get(section, {}).get(key)]


def dump_config(cfg: Config) -> str:
    """YAML text of a config (round-trips through ``load_config``)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


__all__ = ["PRECISION_NAMES", "Config", "DataConfig", "EvalConfig", "GammConfig", "ModelConfig", "TrainConfig",
           "apply_overrides", "config_changes", "config_from_dict", "config_to_dict", "dump_config", "load_config",
           "replace", "saved_config"]
