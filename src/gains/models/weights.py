"""Loading weights from local files: torchvision state dicts, detectron2/Caffe2 ``R-50.pkl``-style
backbones, gains checkpoints, shipped models by name (``gains.zoo``); ``imagenet`` through torchvision's
weights API (an online opt-in).

No file is ever unpickled into arbitrary objects: every ``torch.load`` uses ``weights_only=True``, and a
``.pkl`` goes through :class:`_ArrayUnpickler`, which builds only numpy arrays, numpy scalars and plain
containers and refuses any other global the file names. Tensors whose shape does not fit (another number of
classes) are skipped and reported.
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gains import zoo
from gains.errors import InputError

log = logging.getLogger("gains.models")

_C2_LAYER = re.compile(r"^res(\d)_(\d+)_branch(1|2a|2b|2c)(_bn)?_(w|b|s|rm|riv)$")
_C2_BRANCH = {"2a": ("conv1", "bn1"), "2b": ("conv2", "bn2"), "2c": ("conv3", "bn3"),
              "1": ("downsample.0", "downsample.1")}
_D2_BLOCK = re.compile(r"^(?:backbone\.bottom_up\.)?res(\d)\.(\d+)\.(conv[123]|shortcut)(\.norm)?\.(\w+)$")


def _c2_to_torchvision(name: str) -> str | None:
    """Caffe2 (``res2_0_branch2a_bn_s``) or detectron2 (``res2.0.conv1.norm.weight``) name -> torchvision."""
    stem = {"conv1_w": "conv1.weight", "res_conv1_bn_s": "bn1.weight", "res_conv1_bn_b": "bn1.bias",
            "res_conv1_bn_rm": "bn1.running_mean", "res_conv1_bn_riv": "bn1.running_var",
            "stem.conv1.weight": "conv1.weight", "stem.conv1.norm.weight": "bn1.weight",
            "stem.conv1.norm.bias": "bn1.bias", "stem.conv1.norm.running_mean": "bn1.running_mean",
            "stem.conv1.norm.running_var": "bn1.running_var"}
    bare = name.removeprefix("backbone.bottom_up.")
    if bare in stem:
        return stem[bare]
    m = _C2_LAYER.match(name)
    if m:
        stage, block, branch, bn, kind = m.groups()
        conv, norm = _C2_BRANCH[branch]
        layer = f"layer{int(stage) - 1}.{block}"
        if bn:
            return f"{layer}.{norm}." + {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}[kind]
        return f"{layer}.{conv}.weight" if kind == "w" else None
    m = _D2_BLOCK.match(name)
    if m:
        stage, block, conv, norm, kind = m.groups()
        target = {"conv1": ("conv1", "bn1"), "conv2": ("conv2", "bn2"), "conv3": ("conv3", "bn3"),
                  "shortcut": ("downsample.0", "downsample.1")}[conv]
        return f"layer{int(stage) - 1}.{block}.{target[1] if norm else target[0]}.{kind}"
    return None


def _pickle_allowlist() -> dict[tuple[str, str], object]:
    """The only globals a weights pickle may name: what numpy arrays, numpy scalars, dtypes and ordered dicts
    pickle as (under numpy 1 and 2 module names, as Python 2 and 3 wrote them, protocols 0 to 5), and
    ``_codecs.encode``, which protocol-2 pickles use to rebuild ``bytes``. Each name maps to the object itself,
    never to an import."""
    import codecs
    from collections import OrderedDict

    reconstruct = np.zeros(1).__reduce__()[0]  # numpy's array constructor for pickles
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # ... for protocol 5, from an out-of-band-capable buffer
    scalar = np.float32(0).__reduce__()[0]  # numpy's scalar constructor for pickles
    allowed: dict[tuple[str, str], object] = {("collections", "OrderedDict"): OrderedDict,
                                              ("_codecs", "encode"): codecs.encode}
    for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = frombuffer
    for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core", "numpy._core"):
        allowed[(module, "ndarray")] = np.ndarray
        allowed[(module, "dtype")] = np.dtype
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays, numpy scalars and plain containers, and nothing else: a file
    naming any other global (a function to call, a class to build) is refused before anything runs."""

    _allowed = _pickle_allowlist()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a weights pickle holds only numpy "
                                         "arrays and plain containers") from None


def read_detectron2_pkl(path: str | Path) -> dict[str, torch.Tensor]:
    """A detectron2/Caffe2 backbone pickle (``{"model": {name: ndarray}}`` or a bare dict) as torchvision
    ResNet names. Caffe2 BN has only scale/bias: running mean 0 and variance 1 are filled in.

    The file is read with :class:`_ArrayUnpickler`: no code in it can run.

    Raises:
        InputError: unreadable or truncated file, a global other than numpy's array types, no weights inside.
    """
    try:
        with open(path, "rb") as fh:
            data = _ArrayUnpickler(fh, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            RecursionError, MemoryError) as exc:
        raise InputError(f"{path}: cannot read pickle ({exc})") from exc
    blobs = data.get("model", data.get("blobs", data)) if isinstance(data, dict) else None
    if not isinstance(blobs, dict):
        raise InputError(f"{path}: no weight dictionary inside")
    out: dict[str, torch.Tensor] = {}
    for name, value in blobs.items():
        target = _c2_to_torchvision(name) if isinstance(name, str) else None
        if target is None:
            continue
        array = np.asarray(value) if isinstance(value, np.ndarray | np.generic | float | int) else None
        if array is None or array.dtype.kind not in "biuf":
            raise InputError(f"{path}: {name}: expected a numeric array, got {type(value).__name__}")
        out[target] = torch.as_tensor(array)
    for key in list(out):
        if key.endswith(".weight") and (key.startswith("bn1") or ".bn" in key or "downsample.1" in key):
            base = key[: -len("weight")]
            out.setdefault(base + "running_mean", torch.zeros_like(out[key]))
            out.setdefault(base + "running_var", torch.ones_like(out[key]))
    if not out:
        raise InputError(f"{path}: no ResNet weights recognised (detectron2 or Caffe2 names expected)")
    return out


def _load_filtered(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> tuple[int, list[str]]:
    """Load the tensors whose names and shapes fit; returns (number loaded, names skipped)."""
    own = module.state_dict()
    fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(fit))
    module.load_state_dict(fit, strict=False)
    if skipped:
        groups = sorted({".".join(k.split(".")[:2]) for k in skipped})
        log.info("%s: %d tensors skipped (absent or of another shape: %s), e.g. %s", where, len(skipped),
                 ", ".join(groups), skipped[:3])
    return len(fit), skipped


def _without_heads(state: dict[str, torch.Tensor], heads: bool) -> dict[str, torch.Tensor]:
    if heads:
        return state
    kept = {k: v for k, v in state.items() if not k.startswith("roi_heads.")}
    log.info("RoI heads not loaded (model.weights_heads: false): %d tensors left out", len(state) - len(kept))
    return kept


def load_weights(model: nn.Module, spec: str, backbone: str = "resnet50", heads: bool = True) -> int:
    """Initialise ``model`` from ``spec`` (``none``, ``imagenet``, a shipped model's name or a local file);
    returns the tensors loaded. ``heads=False`` leaves the RoI heads (box, mask, GA) as initialised, so
    every variant started from one model gets fresh heads of its own.

    Raises:
        InputError: unreadable or truncated file, or a file with nothing that fits the model.
    """
    if spec in ("none", "", None):
        return 0
    body = model.backbone.body
    if spec == "imagenet":
        import torchvision

        weights = torchvision.models.get_model_weights(backbone).DEFAULT
        n, _ = _load_filtered(body, weights.get_state_dict(progress=True), "imagenet")
        return n
    if zoo.is_name(spec):
        n, _ = _load_filtered(model, _without_heads(zoo.load(spec)["model"], heads), f"model {spec}")
        log.info("%s: loaded %d tensors", spec, n)
        return n
    zoo.check_spec(spec)
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"{path}: weights file not found")
    if path.suffix == ".pkl":
        n, _ = _load_filtered(body, read_detectron2_pkl(path), str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputError(f"{path}: unreadable or truncated weights file ({type(exc).__name__})") from exc
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]  # a gains checkpoint
        if not isinstance(state, dict):
            raise InputError(f"{path}: expected a state dict")
        if any(k.startswith(("backbone.", "roi_heads.", "rpn.")) for k in state):
            n, _ = _load_filtered(model, _without_heads(state, heads), str(path))
        else:
            n, _ = _load_filtered(body, state, str(path))
    if n == 0:
        raise InputError(f"{path}: no tensor fits the model (backbone {backbone})")
    log.info("%s: loaded %d tensors", spec, n)
    return n
