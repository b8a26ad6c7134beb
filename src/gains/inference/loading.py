"""Load a trained model from a run folder, a checkpoint file or a shipped model's name, with its config and
categories."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from gains import zoo
from gains.config import Config, ModelConfig, apply_overrides, saved_config
from gains.engine.checkpoint import checkpoint_path, load_checkpoint
from gains.errors import InputError
from gains.models.build import build_model


def checkpoint_stamp(spec: str | Path) -> int:
    """Modification time (ns) of a checkpoint file or a run folder's checkpoint, 0 for a shipped model's name or a
    path that is not there: a cache of loaded models keyed by it reloads a rewritten file."""
    path = Path(spec)
    try:
        return checkpoint_path(path).stat().st_mtime_ns if path.exists() else 0
    except InputError:  # a run folder without a checkpoint: loading it says so
        return 0


def resolve_scale(model_cfg: ModelConfig, scale: float | None = None, object_size: float | None = None
                  ) -> tuple[float | None, str]:
    """(scale applied to every image, or None for the old resize-to-``min_size_test`` rule; a one-line
    description for the user) from ``--scale`` or ``--object-size`` (the users' objects' diameter in
    pixels, brought to the ``object_size`` the model was trained at), else the model's ``test_scale``.

    Raises:
        InputError: both options, a non-positive value, or ``--object-size`` for a model without an object size.
    """
    if scale is not None and object_size is not None:
        raise InputError("give --scale or --object-size, not both")
    for name, value in (("--scale", scale), ("--object-size", object_size)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise InputError(f"{name} must be a finite number > 0, got {value}")
    if object_size is not None:
        if model_cfg.object_size is None:
            raise InputError("this model records no object size (trained before the scale rule); pass --scale")
        s = model_cfg.object_size / object_size
        return s, (f"scale {s:.3g}: objects of {object_size:g} px brought to the {model_cfg.object_size:g} px "
                   "the model was trained at")
    if scale is not None:
        return scale, f"scale {scale:.3g} (--scale)"
    if model_cfg.test_scale is not None:
        size = f", objects of about {model_cfg.object_size:g} px at the network" if model_cfg.object_size else ""
        return model_cfg.test_scale, (f"scale {model_cfg.test_scale:.3g} (the model's rule{size}; "
                                      "--object-size PX for other object sizes)")
    return None, (f"each image resized to {model_cfg.min_size_test} px on its short side (a model without a "
                  "scale rule; --scale or --object-size to set one)")


def load_model(path: str | Path, overrides: list[str] | None = None, device: str | torch.device = "cpu"
               ) -> tuple[torch.nn.Module, Config, list[dict[str, Any]]]:
    """(model in eval mode on ``device``, its config, its categories [{label, id, name}]).

    ``path`` is a run folder, a checkpoint file or the name of a shipped model (``gains.zoo``); an existing
    path wins over a name. ``overrides`` may change inference settings (e.g. ``model.detections_per_img=300``).

    Raises:
        InputError: unknown name, unreadable/truncated checkpoint, or weights that do not fit the model the
            config describes (e.g. ``--set model.variant=gains`` on a maskrcnn checkpoint).
    """
    if zoo.is_name(path):
        file, ckpt = f"model {path}", zoo.load(str(path))
    else:
        zoo.check_spec(path)
        file = checkpoint_path(path)
        ckpt = load_checkpoint(file)
    cfg = apply_overrides(saved_config(ckpt["config"]), overrides or [])
    categories = ckpt.get("categories") or []
    variant = ckpt.get("variant", cfg.model.variant)
    if variant != cfg.model.variant:
        raise InputError(f"{file}: checkpoint of a {variant} model, but the config asks for {cfg.model.variant}")
    num_classes = int(ckpt["model"]["roi_heads.box_predictor.cls_score.weight"].shape[0]) - 1
    model = build_model(cfg.model, num_classes)
    missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
    if missing or unexpected:
        raise InputError(f"{file}: weights do not fit a {cfg.model.variant} model "
                         f"({len(missing)} missing, e.g. {missing[:1]}; {len(unexpected)} unexpected, e.g. "
                         f"{unexpected[:1]})")
    if not categories:
        categories = [{"label": k, "id": k, "name": str(k)} for k in range(1, num_classes + 1)]
    return model.to(device).eval(), cfg, categories
