"""Distributed helpers: a no-op in one process; under ``torchrun`` they wrap torch.distributed.

The backend follows the device (gloo on CPU, nccl on CUDA). Rank 0 logs and writes files.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
import torch.distributed as dist

from gains.errors import InputError


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def device_problem(spec: str) -> str | None:
    """Why the device ``spec`` (``auto``, ``cpu``, ``cuda`` or ``cuda:i``) cannot be used here, naming the
    devices this machine has; None when it can."""
    if spec in ("auto", "cpu"):
        return None
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    have = ", ".join(["cpu", *(f"cuda:{i}" for i in range(n))])
    if not re.fullmatch(r"cuda(:\d+)?", spec):
        return f"expected auto, cpu, cuda or cuda:i; this machine has {have}"
    if n == 0:
        return f"CUDA is not available; this machine has {have}"
    if ":" in spec and int(spec.split(":")[1]) >= n:
        return f"no such device; this machine has {have}"
    return None


def resolve_device(spec: str, key: str = "device") -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:i``; under torchrun CUDA uses LOCAL_RANK.

    Raises:
        InputError: a device this machine does not have, as one line prefixed with ``key`` (e.g. ``train.device``).
    """
    problem = device_problem(spec)
    if problem:
        raise InputError(f"{key} {spec!r}: {problem}")
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if spec == "cuda":
            spec = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(torch.device(spec))
    return torch.device(spec)


def init_distributed(device: torch.device) -> bool:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); returns whether distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (just ``[obj]`` in one process)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
