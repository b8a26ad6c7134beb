"""ONNX export of the inference graph with torch's TorchScript-based exporter (``dynamo=False``), and a runner
on onnxruntime.

Why not the default ``dynamo=True`` exporter: ``torch.export`` needs every data-dependent branch rewritten
(the number of proposals that survive a score threshold or NMS decides shapes all through the box and mask
heads), which torchvision's detection models do not do (pytorch/vision#9462); torchvision writes them for the
tracing exporter instead (``torchvision._is_tracing()`` branches, ``_script_if_tracing`` helpers), and that is
the path torchvision documents for Mask R-CNN. The image height and width and the number of detections are
dynamic axes; NMS and RoIAlign become ONNX ``NonMaxSuppression`` and ``RoiAlign``. The sidecar's content goes
into the file's ``metadata_props`` (``with_metadata``, with the onnx package).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from gains.errors import InputError
from gains.export.graph import INPUT_NAMES, MaskRCNNGraph, output_names

OPSET = 17
# opsets the export supports: torchvision registers NMS and RoIAlign for 11 and up, and torch's TorchScript-based
# exporter stops at 20
MIN_OPSET, MAX_OPSET = 11, 20


def to_bytes(graph: MaskRCNNGraph, example: torch.Tensor, opset: int = OPSET) -> bytes:
    """The ONNX model of the graph, traced on ``example`` (float32 [3, H, W]; it must give at least one
    detection, so that the box and mask heads are traced on real rows), with dynamic H, W and detections."""
    return export_module(graph, example, opset, {INPUT_NAMES[0]: {1: "height", 2: "width"}},
                         {n: {0: "detections"} for n in output_names(graph)})


def export_module(module: torch.nn.Module, example: torch.Tensor, opset: int, inputs: dict[str, dict[int, str]],
                  outputs: dict[str, dict[int, str]]) -> bytes:
    """The ONNX model of ``module`` traced on its one input ``example``: ``inputs`` and ``outputs`` name the
    tensors, in order, each with its dynamic axes (axis -> name)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice and tracer warnings
        torch.onnx.export(module, (example,), buf, dynamo=False, opset_version=opset, input_names=list(inputs),
                          output_names=list(outputs), dynamic_axes={**inputs, **outputs}, do_constant_folding=True)
    return buf.getvalue()


def with_metadata(data: bytes, meta: dict[str, Any]) -> bytes:
    """The ONNX model ``data`` with ``meta`` as its ``metadata_props``: one entry per top-level key, the value as
    JSON text (onnxruntime: ``InferenceSession(f).get_modelmeta().custom_metadata_map``).

    Raises:
        InputError: the onnx package is not installed.
    """
    try:
        import onnx
    except ImportError as exc:
        raise InputError("ONNX export needs the onnx package: pip install 'gains-seg[export]'") from exc
    model = onnx.load_from_string(data)
    onnx.helper.set_model_props(model, {k: json.dumps(v) for k, v in meta.items()})
    return model.SerializeToString()


def session(model: str | Path | bytes):
    """An onnxruntime ``InferenceSession`` (CPU) of an ONNX file or its bytes.

    Raises:
        InputError: onnxruntime is not installed.
    """
    try:
        import onnxruntime
    except ImportError as exc:
        raise InputError("running ONNX models needs onnxruntime: pip install 'gains-seg[export]'") from exc
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])


def run(sess, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs (by name) of an onnxruntime session on one float32 [3, H, W] image."""
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(names, {sess.get_inputs()[0].name: image.detach().cpu().numpy()})
    return {n: torch.from_numpy(v) for n, v in zip(names, values, strict=True)}
