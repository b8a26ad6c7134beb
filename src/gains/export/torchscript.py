"""TorchScript export of the inference graph (``torch.jit.script``: the graph's control flow is compiled, so
images of any size and any number of detections run through the one file)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from gains.export.graph import MaskRCNNGraph


def script(graph: MaskRCNNGraph) -> torch.jit.ScriptModule:
    """``torch.jit.script`` of the graph (TorchScript's deprecation warning silenced: it is still what Java/C++
    hosts such as DeepImageJ and QuPath's DJL engine load)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        return torch.jit.script(graph)


def to_bytes(graph: MaskRCNNGraph) -> bytes:
    """The saved TorchScript module (``torch.jit.save``) of the graph."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        torch.jit.save(script(graph), buf)
    return buf.getvalue()


def load(source: str | Path | bytes) -> torch.jit.ScriptModule:
    """A saved export (a file or its bytes) on the CPU, ready to call: ``load(path)(image)`` -> the graph's
    outputs (a tuple)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        src = io.BytesIO(source) if isinstance(source, bytes) else str(source)
        return torch.jit.load(src, map_location="cpu").eval()
