"""Checkpoints: model, optimizer, scheduler, scaler, iteration, RNG states and config, written atomically.

Everything is stored as tensors and plain Python values so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gains.atomic import atomic_write
from gains.errors import InputError


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states in weights_only-safe form."""
    np_state = np.random.get_state()
    state = {"python": list(random.getstate()[1]), "python_version": random.getstate()[0],
             "python_gauss": random.getstate()[2],
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, **parts: Any) -> None:
    """``torch.save`` of ``parts`` through a temporary file and a rename."""
    buf = io.BytesIO()
    torch.save(parts, buf)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or the best (else last) checkpoint of a run folder."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise InputError(f"{path}: no best.pt or last.pt in this run folder")
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        InputError: missing, unreadable or truncated file, or not a gains checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: unreadable or truncated checkpoint ({type(exc).__name__})") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise InputError(f"{path}: not a gains checkpoint (no model/config)")
    return ckpt
