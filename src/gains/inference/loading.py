"""Load a trained model from a run folder, a checkpoint file or a shipped model's name, with its config and
categories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gains import zoo
from gains.config import Config, apply_overrides, saved_config
from gains.engine.checkpoint import load_checkpoint
from gains.errors import InputError
from gains.models.build import build_model


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or the best (else last) checkpoint of a run folder."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise InputError(f"{path}: no best.pt or last.pt in this run folder")
    return path


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
