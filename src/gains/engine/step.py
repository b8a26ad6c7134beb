"""One optimisation step of a detection model, as ``gains.engine.train.fit`` runs it (and the benchmarks time it)."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

import torch

from gains.config import PRECISION_NAMES
from gains.errors import InputError
from gains.sysinfo import native_bf16_cpu

log = logging.getLogger("gains.train")

# ``train.amp`` values; "auto" resolves per device (``resolve_amp``)
AMP_MODES = ("auto", *PRECISION_NAMES)


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or infinite (the message names the iteration, terms and image ids)."""


def resolve_amp(amp: str, device: torch.device) -> str:
    """The autocast mode a run uses on ``device``: ``amp`` itself, or for "auto" bf16 on a CPU with native bf16
    (else "none", fp32) and on a CUDA GPU that supports it (else "fp16"); "none" elsewhere.

    Raises:
        InputError: ``amp`` is not one of ``AMP_MODES``, or is fp16 on a device other than CUDA.
    """
    if amp not in AMP_MODES:
        raise InputError(f"train.amp: {amp!r} is not one of {', '.join(AMP_MODES)}")
    if amp == "fp16" and device.type != "cuda":
        raise InputError("train.amp=fp16 needs CUDA; use bf16 or auto on the CPU")
    if amp == "bf16" and device.type == "cpu" and not native_bf16_cpu():
        log.warning("train.amp=bf16 on a CPU without native bf16 (no AVX512-BF16 or AMX): steps run several "
                    "times slower than in fp32 here; train.amp=auto picks fp32 on this CPU")
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.type == "cpu" and native_bf16_cpu() else "none"


def autocast(amp: str, device: torch.device):
    """The autocast context of a resolved ``train.amp`` ("none", "bf16", "fp16"; fp16 only on CUDA)."""
    if amp == "none":
        return nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("train.amp=fp16 needs CUDA; use bf16 on the CPU")
    return torch.autocast(device.type, dtype=torch.float16 if amp == "fp16" else torch.bfloat16)


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, imgs: list[torch.Tensor],
               targets: list[dict[str, torch.Tensor]], amp: str, clip_grad_norm: float,
               scaler: Any = None, it: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward under ``amp``, backward, optional gradient clipping, optimizer step; returns (loss, terms).

    ``net`` may be a DistributedDataParallel wrapper (its parameters are the model's). ``scaler`` is a
    ``torch.amp.GradScaler`` (fp16) or None.

    Raises:
        NonFiniteLossError: the summed loss is NaN or infinite (nothing is stepped).
    """
    device = imgs[0].device
    with autocast(amp, device):
        losses = net(imgs, targets)
    loss = sum(losses.values())
    if not torch.isfinite(loss):
        ids = [int(t["image_id"]) for t in targets if "image_id" in t]
        terms = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
        raise NonFiniteLossError(f"non-finite loss at iteration {it} ({terms}) on image ids {ids}")
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip_grad_norm)
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        if clip_grad_norm:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
    return loss, losses
