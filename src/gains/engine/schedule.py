"""Optimizer and learning-rate schedule: SGD with momentum, linear warm-up, multi-step decay."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.SyncBatchNorm)


def build_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float, weight_decay_norm: float
                    ) -> torch.optim.SGD:
    """SGD over trainable parameters; normalisation-layer parameters get ``weight_decay_norm``."""
    norm_params, other = [], []
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                (norm_params if isinstance(module, NORMS) else other).append(p)
    groups = [{"params": other, "weight_decay": weight_decay}]
    if norm_params:
        groups.append({"params": norm_params, "weight_decay": weight_decay_norm})
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


def lr_factor(iteration: int, warmup_iters: int, warmup_factor: float, steps: Sequence[int], gamma: float) -> float:
    """Multiplier of the base LR at ``iteration`` (0-based): linear warm-up from ``warmup_factor``, then
    ``gamma`` per milestone passed."""
    decay = gamma ** sum(iteration >= s for s in steps)
    if iteration < warmup_iters:
        alpha = iteration / warmup_iters
        return decay * (warmup_factor * (1 - alpha) + alpha)
    return decay


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_iters: int, warmup_factor: float,
                    steps: Sequence[int], gamma: float) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR stepping once per iteration with ``lr_factor``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(it, warmup_iters, warmup_factor, list(steps), gamma))
