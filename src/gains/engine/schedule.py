"""Optimizer and learning-rate schedule: SGD with momentum, linear warm-up, multi-step decay, on iterations
or on the elapsed fraction of a wall-clock budget (``TimeBudget``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


class TimeBudget:
    """A wall-clock training budget whose learning-rate schedule runs on the elapsed fraction.

    The preset's schedule (``warmup_iters``, ``steps`` out of ``max_iters``) is read as fractions of the
    run: at elapsed time ``t`` of a budget ``T`` the LR factor is the one of iteration
    ``t / T * max_iters``, so a budgeted run warms up and decays like a full one and ends decayed, however
    many iterations the machine manages. Only time inside training steps and data loading counts
    (``pause``/``resume`` leave validation and checkpoint writing out); ``elapsed`` survives a resume.

    Args:
        minutes: the budget; ``clock``: seconds, monotonic (``time.monotonic``; fakes in tests).
    """

    def __init__(self, minutes: float, max_iters: int, elapsed: float = 0.0, clock: Callable[[], float] | None = None
                 ) -> None:
        if not minutes > 0:
            raise ValueError(f"train.max_minutes must be positive, got {minutes}")
        import time

        self.seconds, self.max_iters, self.elapsed = float(minutes) * 60.0, int(max_iters), float(elapsed)
        self.clock = clock or time.monotonic
        self._mark: float | None = None

    def resume(self) -> None:
        """Start (or restart after a pause) counting."""
        self._mark = self.clock()

    def pause(self) -> None:
        """Add the time since the last mark and stop counting."""
        self.tick()
        self._mark = None

    def tick(self) -> None:
        """Add the time since the last mark (no-op while paused)."""
        if self._mark is not None:
            now = self.clock()
            self.elapsed += now - self._mark
            self._mark = now

    @property
    def fraction(self) -> float:
        """Elapsed share of the budget (may pass 1 on the last step)."""
        return self.elapsed / self.seconds

    def exhausted(self) -> bool:
        return self.elapsed >= self.seconds

    def virtual_iteration(self) -> int:
        """The iteration of the preset's schedule that the elapsed fraction corresponds to."""
        return min(int(self.fraction * self.max_iters), self.max_iters - 1)

    def lr_factor(self, warmup_iters: int, warmup_factor: float, steps: Sequence[int], gamma: float) -> float:
        """``lr_factor`` at the virtual iteration."""
        return lr_factor(self.virtual_iteration(), warmup_iters, warmup_factor, steps, gamma)
