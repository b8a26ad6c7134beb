"""gains: gradient-anomaly-aware instance segmentation (GAInS) for touching, crossing and overlapping objects.

The Python API on arrays (``gains.segment``, ``gains.Model``, ``gains.Segmentation``: :mod:`gains.api`) is
imported on first use, so ``import gains`` imports neither torch nor the model code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gains.api import Model, Segmentation, segment

__version__ = "0.1.0"
__all__ = ["Model", "Segmentation", "__version__", "segment"]
_API = ("Model", "Segmentation", "segment")


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("gains.api"), name)
    raise AttributeError(f"module 'gains' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
