"""Shipped models: trained gains checkpoints inside the package, found by name, checked by sha256.

A model is a folder ``gains/zoo/models/<name>/`` holding ``card.json`` and the checkpoint's bytes cut into
parts of at most ``PART_BYTES`` (``<name>.pt.000``, ``.001``, ...). The card lists every part with its
size and sha256 and the sha256 of the whole; a model is read only when every hash matches, and then with
``torch.load(weights_only=True)``. The checkpoint holds float16 weights, the training config (so its input
normalisation and image sizes travel with it) and the categories, like a run's ``last.pt`` without the
optimizer. Nothing is ever downloaded.

A name is accepted wherever a checkpoint is (``gains predict NAME``, ``gains eval NAME``,
``--set model.weights=NAME``): an existing file or folder of that name wins, so a user's own run folder
keeps working; a word that is neither fails with the list of known names.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from gains.errors import InputError
from gains.jsonfile import parse_json

PART_BYTES = 16 * 2**20
NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def _root():
    return resources.files("gains.zoo") / "models"


def names() -> list[str]:
    """Names of the shipped models, sorted."""
    root = _root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "card.json").is_file())


@cache
def card(name: str) -> dict[str, Any]:
    """The model card (parsed ``card.json``) of a shipped model.

    Raises:
        InputError: an unknown name (the message lists the known ones).
    """
    if name not in names():
        known = ", ".join(names()) or "none"
        raise InputError(f"unknown model {name!r}; shipped models: {known} (or pass a run folder or a .pt file)")
    path = _root() / name / "card.json"
    doc = parse_json(path.read_bytes(), path)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(doc).__name__}; reinstall gains")
    return doc


def is_name(spec: str | Path) -> bool:
    """Whether ``spec`` means a shipped model: a known name that is not an existing path."""
    return isinstance(spec, str | Path) and not Path(spec).exists() and str(spec) in names()


def check_spec(spec: str | Path) -> None:
    """Raise the one-line unknown-name error for a bare word that is neither a path nor a shipped model."""
    text = str(spec)
    if not Path(text).exists() and NAME.match(text) and text not in names() and text not in ("none", "imagenet"):
        card(text)


def read_bytes(name: str) -> bytes:
    """The checkpoint bytes of a shipped model, every part and the whole checked against the card.

    Raises:
        InputError: unknown name, a missing part, or a sha256 that does not match (a damaged install).
    """
    info = card(name)
    folder = _root() / name
    chunks = []
    for part in info["files"]:
        path = folder / part["name"]
        if not path.is_file():
            raise InputError(f"{name}: part {part['name']} of the shipped model is missing; reinstall gains")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != part["sha256"]:
            raise InputError(f"{name}: {part['name']} does not match its sha256 in the model card; reinstall gains")
        chunks.append(data)
    whole = b"".join(chunks)
    if hashlib.sha256(whole).hexdigest() != info["sha256"]:
        raise InputError(f"{name}: the joined model does not match its sha256 in the model card; reinstall gains")
    return whole


def load(name: str) -> dict[str, Any]:
    """The checkpoint dict of a shipped model (``model`` float16 state dict, ``config``, ``categories``)."""
    import torch

    return torch.load(io.BytesIO(read_bytes(name)), map_location="cpu", weights_only=True)


def write_parts(payload: bytes, folder: Path, name: str) -> list[dict[str, Any]]:
    """Cut ``payload`` into ``<name>.pt.NNN`` files of at most ``PART_BYTES`` in ``folder``; returns their
    card entries (name, bytes, sha256). Old parts of that name are removed first."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{name}.pt.*"):
        old.unlink()
    entries = []
    for k, start in enumerate(range(0, len(payload), PART_BYTES)):
        chunk = payload[start : start + PART_BYTES]
        part = folder / f"{name}.pt.{k:03d}"
        part.write_bytes(chunk)
        entries.append({"name": part.name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    return entries


def pack(checkpoint: dict[str, Any], folder: Path, name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Write ``checkpoint`` (a run's ``last.pt`` dict) as the shipped model ``folder/<name>``: float16 weights,
    config, categories and variant (no optimizer), in parts, with ``card.json`` = ``fields`` + the file list,
    sizes and sha256 sums; returns the card."""
    import torch

    weights = {k: v.half() if v.is_floating_point() else v for k, v in checkpoint["model"].items()}
    keep = {"model": weights, "config": checkpoint["config"], "categories": checkpoint.get("categories") or [],
            "variant": checkpoint.get("variant", checkpoint["config"]["model"]["variant"]),
            "iteration": int(checkpoint.get("iteration", 0))}
    buf = io.BytesIO()
    torch.save(keep, buf)
    payload = buf.getvalue()
    target = Path(folder) / name
    info = {"name": name, **fields, "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
            "files": write_parts(payload, target, name)}
    (target / "card.json").write_text(json.dumps(info, indent=1) + "\n")
    card.cache_clear()
    return info


__all__ = ["PART_BYTES", "card", "check_spec", "is_name", "load", "names", "pack", "read_bytes", "write_parts"]
