"""``gains export-model``: a checkpoint or shipped model -> a TorchScript or ONNX file plus its sidecar JSON.

The export is built in memory, checked against the eager graph on two synthetic images of different sizes
(TorchScript always; ONNX when onnxruntime is installed) and only then written: ``FILE`` and ``FILE.json``
appear together or not at all. An ONNX file also carries the sidecar's content as its metadata, and with
``full`` it holds the self-contained graph of ``gains.export.full`` (raw pixels in, image-size results out).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gains import __version__
from gains.atomic import atomic_write
from gains.config import Config
from gains.errors import InputError
from gains.export import full as full_graph
from gains.export import onnx as onnx_export
from gains.export import torchscript
from gains.export.graph import INPUT_NAMES, MaskRCNNGraph, inference_graph, output_names
from gains.export.host import sidecar_path
from gains.inference.loading import load_model
from gains.intensity import Normalisation

FORMATS = ("torchscript", "onnx")
# Export vs eager graph, max absolute difference allowed by the check (float32 CPU kernels; see README)
TOLERANCE = {"boxes": 1e-2, "scores": 1e-4, "masks": 1e-3, "ga_maps": 1e-3}
# what a TorchScript host needs: the graph calls torchvision's native ops (torchvision::nms, torchvision::roi_align)
TORCHSCRIPT_LOAD = ("needs torchvision's native ops (torchvision::nms, torchvision::roi_align) registered before "
                    "loading: python -c \"import torch, torchvision; m = torch.jit.load('{file}')\"")


class ExportCheckError(RuntimeError):
    """The exported file does not reproduce the eager graph (a bug, not a user mistake)."""


def synthetic_image(height: int, width: int, diameter: float, seed: int = 0) -> torch.Tensor:
    """Float32 [3, H, W] in [0, 1]: bright discs of about ``diameter`` px, some touching, on a dim noisy
    background; the image the export is traced and checked on."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.full((height, width), 0.05, dtype=np.float32)
    r = max(diameter / 2.0, 3.0)
    step = 2.2 * r
    for cy in np.arange(r + 2, height - r - 1, step):
        for cx in np.arange(r + 2, width - r - 1, step):
            jy, jx = rng.uniform(-0.3 * r, 0.3 * r, size=2)
            rad = r * rng.uniform(0.8, 1.2)
            d2 = (yy - cy - jy) ** 2 + (xx - cx - jx) ** 2
            img = np.maximum(img, rng.uniform(0.6, 0.95) * np.clip(rad + 0.5 - np.sqrt(d2), 0.0, 1.0))
    img = np.clip(img + rng.normal(0.0, 0.02, img.shape), 0.0, 1.0).astype(np.float32)
    return torch.from_numpy(np.repeat(img[None], 3, axis=0))


def as_dict(graph: MaskRCNNGraph, outputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """A graph's output tuple by name."""
    return dict(zip(output_names(graph), outputs, strict=True))


def differences(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    """Max absolute difference per output of two runs (``inf`` when the detections differ in number or labels)."""
    if a["labels"].shape != b["labels"].shape or not torch.equal(a["labels"].long(), b["labels"].long()):
        return {k: math.inf for k in a}
    return {k: float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a if k != "labels"}


def _check_output(out: Path, overwrite: bool) -> None:
    """Raise before any work when ``out`` or its sidecar cannot or may not be written."""
    side = sidecar_path(out)
    for path in (out, side):
        if path.is_dir():
            raise InputError(f"{path}: is a folder; --out names the exported file")
        if path.exists() and not overwrite:
            raise InputError(f"{path}: exists (pass --overwrite to replace it)")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{out}: cannot write there ({parent} is not a writable folder)")


def describe(cfg: Config, categories: list[dict[str, Any]], graph: MaskRCNNGraph, fmt: str, file_name: str,
             source: str, opset: int | None) -> dict[str, Any]:
    """The sidecar JSON of an export: what the graph expects and returns, and what a host does around it
    (``gains.export.host``)."""
    m = cfg.model
    size = 2 * m.mask_pool_size
    outputs = {
        "boxes": "float32 [K, 4] xyxy in network-input pixels (multiply x by W / w and y by H / h)",
        "scores": "float32 [K], descending",
        "labels": "int64 [K], 1..C: categories[].label",
        "masks": f"float32 [K, 1, {size}, {size}] probabilities over each box (paste, then >= mask_thresh)",
    }
    if "ga_maps" in output_names(graph):
        outputs["ga_maps"] = (f"float32 [K, 1, {size}, {size}] regressed GA values over each box (1 = no anomaly; "
                              "paste ga - 1, then add 1)")
    return {
        "format": fmt, "file": file_name, "opset": opset, "gains_version": __version__,
        "torch_version": torch.__version__, "source": source, "variant": m.variant, "backbone": m.backbone,
        "categories": categories,
        "input": {
            "name": INPUT_NAMES[0], "shape": [3, "h", "w"], "dtype": "float32",
            "intensity": {"mode": m.input_norm, "percentiles": list(m.input_percentiles),
                          "value_range": None if m.input_range is None else list(m.input_range),
                          "range": "[0, 1] after normalisation (clipped except in dtype mode for integers)",
                          "channels": "grey replicated to 3; 2 channels as (c0, c1, c0); beyond 3 the first 3"},
            "test_scale": m.test_scale, "object_size": m.object_size, "min_size_test": m.min_size_test,
            "max_size": m.max_size,
            "resize": "h = max(1, round(H * s)), w likewise; bilinear, align_corners=False, no antialias; s = "
                      "test_scale, or min(min_size_test / min(H, W), max_size / max(H, W)) when test_scale is null",
        },
        "in_graph": ["(x - image_mean) / image_std", "zero padding (bottom, right) to multiples of 32",
                     "backbone + FPN", "RPN", "box head, score > box_score_thresh, NMS, top detections_per_img",
                     "mask branch" + (", guidance fusion and anomaly branch" if "ga_maps" in outputs else "")],
        "outside_graph": ["intensity normalisation", "resize to network scale", "boxes back to image pixels",
                          "pasting M x M maps into the image", "score_thresh", "mask_thresh", "tiling large images"],
        "image_mean": list(m.image_mean), "image_std": list(m.image_std),
        "outputs": outputs, "mask_size": size, "box_score_thresh": m.box_score_thresh,
        "box_nms_thresh": m.box_nms_thresh, "detections_per_img": m.detections_per_img,
        "score_thresh": cfg.eval.score_thresh, "mask_thresh": 0.5,
        "paste": "torchvision.models.detection.roi_heads.paste_masks_in_image (see gains.export.host)",
        "load": TORCHSCRIPT_LOAD.format(file=file_name) if fmt == "torchscript" else
                "any ONNX runtime with the standard ops of the opset (NonMaxSuppression, RoiAlign included)",
    }


def _check(reference, run, images: list[torch.Tensor], compare=differences, tolerance=TOLERANCE
           ) -> dict[str, float]:
    """Worst ``compare`` differences, over ``images``, between ``run(image)`` and ``reference(image)`` (the eager
    graph), both dicts by output name.

    Raises:
        ExportCheckError: a difference over ``tolerance``.
    """
    worst: dict[str, float] = {}
    for image in images:
        with torch.no_grad():
            want, got = reference(image), run(image)
        diff = compare(want, got)
        for k, v in diff.items():
            worst[k] = max(worst.get(k, 0.0), v)
        bad = {k: v for k, v in diff.items() if not v <= tolerance[k]}
        if bad:
            raise ExportCheckError(f"the export differs from the eager model on a {tuple(image.shape)} image: {bad} "
                                   f"({len(want['scores'])} eager detections)")
    return worst


def _onnx_check(data: bytes, reference, images: list[torch.Tensor], compare, tolerance
                ) -> tuple[dict[str, float] | None, str]:
    """(``_check`` of the ONNX bytes in onnxruntime, "") or (None, why it did not run)."""
    try:
        sess = onnx_export.session(data)
    except InputError:
        return None, "not checked: onnxruntime is not installed"
    return _check(reference, lambda im: onnx_export.run(sess, im), images, compare, tolerance), ""


def export_model(spec: str | Path, to: str, out: str | Path, overwrite: bool = False,
                 overrides: list[str] | None = None, opset: int = onnx_export.OPSET, check: bool = True,
                 full: bool = False) -> dict[str, Any]:
    """Export a run folder, checkpoint file or shipped model name to ``out`` (+ ``out.json``, the sidecar; for
    ONNX also inside the file as metadata). ``full``: the self-contained graph (``gains.export.full``; ONNX only).

    Returns a summary: out, sidecar, bytes, seconds, detections on the tracing image, the check's max
    differences (None where it did not run), a note and ``load`` (what a host needs to load the file).

    Raises:
        InputError: unknown format, ``full`` with TorchScript or a ``dtype``-normalised model, an output that
            exists (without ``overwrite``) or cannot be written, or a checkpoint ``load_model`` refuses; nothing
            is written then.
        ExportCheckError: the export does not reproduce the eager graph; nothing is written.
    """
    start = time.perf_counter()
    if to not in FORMATS:
        raise InputError(f"unknown export format {to!r}; choose from {', '.join(FORMATS)}")
    if full and to != "onnx":
        raise InputError("--full: the self-contained graph is exported to ONNX only (--to onnx)")
    if to == "onnx" and not onnx_export.MIN_OPSET <= opset <= onnx_export.MAX_OPSET:
        raise InputError(f"--opset {opset}: the ONNX export needs an opset from {onnx_export.MIN_OPSET} to "
                         f"{onnx_export.MAX_OPSET}")
    out = Path(out)
    _check_output(out, overwrite)
    model, cfg, categories = load_model(spec, overrides, "cpu")
    norm = Normalisation.of_model(cfg.model)
    if full:
        full_graph.check_exportable(norm)
    graph = inference_graph(model)
    diameter = cfg.model.object_size or 20.0
    example, other = synthetic_image(256, 256, diameter), synthetic_image(200, 296, diameter, seed=1)
    with torch.no_grad():
        found = len(graph(example)[1])
    note = ""
    if to == "torchscript":
        data = torchscript.to_bytes(graph)
        if check:
            loaded = torchscript.load(data)
            diffs = _check(lambda im: as_dict(graph, graph(im)), lambda im: as_dict(graph, loaded(im)),
                           [example, other])
    else:
        if not found:
            raise InputError(f"{spec}: the model finds nothing on the synthetic tracing image; ONNX tracing needs "
                             "at least one detection (try --set model.box_score_thresh=0.0)")
        diffs = None
        if full:
            module = full_graph.FullGraph(model, norm, cfg.eval.score_thresh)
            example, other = full_graph.raw_example(example, norm), full_graph.raw_example(other, norm)
            with torch.no_grad():
                data = full_graph.to_bytes(module, example, opset)
            if check:
                diffs, note = _onnx_check(data, lambda im: dict(zip(full_graph.OUTPUT_NAMES, module(im), strict=True)),
                                          [example, other], full_graph.differences, full_graph.TOLERANCE)
        else:
            with torch.no_grad():
                data = onnx_export.to_bytes(graph, example, opset)
            if check:
                diffs, note = _onnx_check(data, lambda im: as_dict(graph, graph(im)), [example, other], differences,
                                          TOLERANCE)
    if not check:
        diffs, note = None, "not checked (check=False)"
    meta = describe(cfg, categories, graph, to, out.name, str(spec), opset if to == "onnx" else None)
    if full:
        meta = full_graph.describe(meta, cfg.eval.score_thresh, 0.5)
    meta["full"] = full
    meta["check"] = {"max_abs_diff": diffs, "tolerance": full_graph.TOLERANCE if full else TOLERANCE,
                     "images": [list(example.shape), list(other.shape)],
                     "note": note or "exported file vs eager PyTorch graph on synthetic discs"}
    if to == "onnx":
        data = onnx_export.with_metadata(data, meta)
    _write(out, data, json.dumps(meta, indent=1).encode() + b"\n")
    return {"out": out, "sidecar": sidecar_path(out), "bytes": len(data), "seconds": time.perf_counter() - start,
            "detections": found, "max_abs_diff": diffs, "note": note, "load": meta["load"]}


def _write(out: Path, data: bytes, side: bytes) -> None:
    """Write the export and its sidecar, both or neither (folders this call made are removed on failure)."""
    made = []
    parent = out.parent
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    written = []
    try:
        for path, payload in ((out, data), (sidecar_path(out), side)):
            existed = path.exists()
            atomic_write(path, lambda fh, payload=payload: fh.write(payload))
            if not existed:
                written.append(path)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        for folder in made:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from exc
