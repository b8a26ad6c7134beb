"""The self-contained graph (``gains export-model --to onnx --full``): raw pixels in, image-size results out, so a
host runs it with onnxruntime alone, with no gains, torch or host code of its own.

``FullGraph.forward(image)`` does in one graph what ``gains predict --tile 0`` does around the model:

1. intensity normalisation of the raw values (``gains.intensity``): ``percentile`` (per channel, numpy's
   ``linear`` percentile from two order statistics found with TopK, on the same regular subsample above
   ``MAX_STAT_PIXELS``; flat channels fall back to min/max) or ``fixed``; ``dtype`` mode cannot be told apart
   from a float32 input, so it is refused (``check_exportable``);
2. the resize to the network scale (``test_scale``, else the ``min_size_test`` rule), bilinear, half-pixel;
3. the model (``graph.MaskRCNNGraph``), with its per-image limits scaled by the network image's area exactly as
   ``gains.inference.predictor.limits_for_area`` does (``scaled_limits``): an RPN whose pre-NMS limit is a tensor
   (``AreaScaledRPN``), and post-NMS and detection limits given as tensors, which the traced slices keep dynamic;
4. boxes back to image pixels, ``score >= score_thresh``, each M x M map pasted at full size as the predictor
   pastes it (``paste``: the same box canvas, expansion, truncation and bilinear weights, written as two small
   matrix products per instance), ``>= mask_thresh``, instances with an empty mask dropped;
5. a label image: each pixel takes the first (highest-scoring) instance whose mask holds it.

GA maps are not output: pasted at full size they would be one float32 image per instance.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.rpn import RegionProposalNetwork

from gains.errors import InputError
from gains.export.graph import MaskRCNNGraph, inference_graph
from gains.inference.predictor import largest_training_area
from gains.intensity import MAX_STAT_PIXELS, Normalisation

INPUT_NAME = "image"
OUTPUT_NAMES = ["label_image", "masks", "scores", "labels", "boxes"]


def check_exportable(norm: Normalisation) -> None:
    """Refuse a normalisation the graph cannot hold: ``dtype`` depends on the pixel type, which a float32 input
    no longer carries.

    Raises:
        InputError: one line with the equivalent ``fixed`` setting to export instead.
    """
    if norm.mode == "dtype":
        raise InputError("--full: the model's input normalisation 'dtype' depends on the pixel type, which a float32 "
                         "input does not carry; export with the same mapping for your images' type, e.g. --set "
                         "model.input_norm=fixed --set 'model.input_range=[0,255]' (8-bit; 65535 for 16-bit)")


def _k(value: Tensor) -> Tensor | int:
    """A 0-d integer tensor as TopK's k: the tensor while tracing (dynamic in ONNX), else a Python int."""
    return value if torch.jit.is_tracing() else int(value)


class AreaScaledRPN(RegionProposalNetwork):
    """torchvision's RPN whose pre-NMS limit per level is the tensor ``pre_limit`` (set per image), not an int
    that tracing would freeze; everything else is the RPN it is built from (``of``)."""

    pre_limit: Tensor

    @classmethod
    def of(cls, rpn: RegionProposalNetwork) -> AreaScaledRPN:
        """The same anchors, head, box coder and settings as ``rpn`` (modules shared, not copied)."""
        new = cls(rpn.anchor_generator, rpn.head, rpn.proposal_matcher.high_threshold,
                  rpn.proposal_matcher.low_threshold, rpn.fg_bg_sampler.batch_size_per_image,
                  rpn.fg_bg_sampler.positive_fraction, dict(rpn._pre_nms_top_n), dict(rpn._post_nms_top_n),
                  rpn.nms_thresh, rpn.score_thresh)
        new.box_coder, new.min_size = rpn.box_coder, rpn.min_size
        return new.eval()

    def _get_top_n_idx(self, objectness: Tensor, num_anchors_per_level: list[int]) -> Tensor:
        found, offset = [], 0
        for ob in objectness.split(num_anchors_per_level, 1):
            k = torch.minimum(self.pre_limit, torch._shape_as_tensor(ob)[1])
            _, idx = ob.topk(_k(k), dim=1)
            found.append(idx + offset)
            offset += ob.shape[1]
        return torch.cat(found, dim=1)


def scaled_limits(height: Tensor, width: Tensor, base: tuple[int, int, int], test_area: float, largest: float
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """(pre-NMS, post-NMS, detections) int64 0-d tensors for a network image of ``height`` x ``width``: ``base``
    (the model's limits) scaled by the area over ``test_area`` (at least 1x), the detections' area capped at
    ``largest`` (``limits_for_area``'s rule, in float64 with round-half-even like Python's ``round``)."""
    area = height.double() * width.double()
    factor = torch.clamp(area / test_area, min=1.0)
    capped = torch.clamp(torch.clamp(area, max=largest) / test_area, min=1.0)
    pre, post, det = (torch.round(b * f).long() for b, f in zip(base, (factor, factor, capped), strict=True))
    return pre, post, det


def _order_stats(values: Tensor, first: Tensor, second: Tensor, low: bool) -> tuple[Tensor, Tensor]:
    """Per row of ``values`` [C, N], its ``first``-th and ``second``-th smallest (0-d int64, first <= second),
    by TopK over the short end: the smallest when ``low``, else the largest."""
    n = torch._shape_as_tensor(values)[1]
    if low:
        ranked, _ = values.topk(_k(second + 1), dim=1, largest=False)
        return ranked[:, first], ranked[:, second]
    ranked, _ = values.topk(_k(n - first), dim=1, largest=True)
    return ranked[:, n - 1 - first], ranked[:, n - 1 - second]


def percentile(values: Tensor, q: float) -> Tensor:
    """float64 [C]: ``numpy.percentile(values, q, axis=1)`` (method ``linear``) of float32 [C, N]."""
    n = torch._shape_as_tensor(values)[1].double()
    frac = q / 100.0
    virtual = n * frac - frac  # numpy's virtual index for 'linear': n * q + (1 - q) - 1
    below = torch.floor(virtual)
    gamma = virtual - below
    first = torch.clamp(below, min=0.0).minimum(n - 1).long()
    second = torch.clamp(below + 1, min=0.0).minimum(n - 1).long()
    a, b = (v.double() for v in _order_stats(values, first, second, low=q < 50.0))
    diff = b - a
    return torch.where(gamma >= 0.5, b - diff * (1.0 - gamma), a + diff * gamma)  # numpy's _lerp


def normalise(image: Tensor, norm: Normalisation) -> Tensor:
    """Float32 [3, H, W] in [0, 1] of raw float32 [H, W, C] pixels, as ``norm`` maps them (``gains.intensity``:
    channels beyond 3 dropped, grey replicated, two channels as c0, c1, c0)."""
    three = torch.cat([image[..., :3], image[..., :1], image[..., :1]], dim=-1)[..., :3]
    chw = three.permute(2, 0, 1)
    if norm.mode == "fixed":
        lo = torch.full((3,), float(norm.value_range[0]), dtype=torch.float64)
        hi = torch.full((3,), float(norm.value_range[1]), dtype=torch.float64)
    else:
        size = torch._shape_as_tensor(image)
        step = torch.ceil(torch.sqrt(size[0].double() * size[1].double() / MAX_STAT_PIXELS)).long()
        rows = torch.arange(0, size[0], step)
        cols = torch.arange(0, size[1], step)
        sample = chw.index_select(1, rows).index_select(2, cols).reshape(3, -1)
        lo, hi = percentile(sample, norm.percentiles[0]), percentile(sample, norm.percentiles[1])
        flat = hi <= lo
        lo = torch.where(flat, sample.min(dim=1).values.double(), lo)
        hi = torch.where(flat, sample.max(dim=1).values.double(), hi)
    span = (hi - lo).float()
    constant = span <= 0
    out = (chw - lo.float()[:, None, None]) / torch.where(constant, torch.ones_like(span), span)[:, None, None]
    out = torch.where(constant[:, None, None], torch.zeros_like(out), out)
    return out.clamp(0.0, 1.0)


def network_size(height: Tensor, width: Tensor, test_scale: float | None, test_size: int, max_size: int
                 ) -> tuple[Tensor, Tensor]:
    """(h, w) int64 0-d: ``GainsTransform.output_size`` at test time, in float64 with round-half-even."""
    h, w = height.double(), width.double()
    if test_scale is not None:
        scale = torch.tensor(float(test_scale), dtype=torch.float64)
    else:
        scale = torch.minimum(test_size / torch.minimum(h, w), max_size / torch.maximum(h, w))
    return torch.clamp(torch.round(h * scale), min=1).long(), torch.clamp(torch.round(w * scale), min=1).long()


def _axis_weights(start: Tensor, stop: Tensor, size: Tensor, m: int) -> Tensor:
    """Float32 [K, size, m + 2]: bilinear weights that paste padded (m + 2) maps along one image axis, for boxes
    from ``start`` to ``stop`` [K] (image pixels), as ``gains.inference.predictor._paste_one`` does: a canvas of
    the box plus one pixel, torchvision's ``paste_masks_in_image`` inside it (box widened by (m + 2) / m about its
    centre, truncated to integers, map resized to its length with half-pixel centres)."""
    c0 = torch.clamp(torch.floor(start) - 1, min=0)
    c1 = torch.minimum(torch.ceil(stop) + 1, size.float())
    lo, hi = start - c0, stop - c0
    half = (hi - lo) * 0.5 * ((m + 2) / m)
    centre = (hi + lo) * 0.5
    e0, e1 = ((centre + d).long().float() for d in (-half, half))  # int64 cast: truncation, as torchvision's
    length = torch.clamp(e1 - e0 + 1, min=1)
    pos = torch.arange(size, dtype=torch.float32)[None]  # [1, S]
    inside = (pos >= (c0 + torch.clamp(e0, min=0))[:, None]) & (pos < (c0 + torch.minimum(e1 + 1, c1 - c0))[:, None])
    ratio = (m + 2) / length  # torchvision's resize: source = in / out * (dst + 0.5) - 0.5, at least 0
    src = torch.clamp(ratio[:, None] * (pos - c0[:, None] - e0[:, None] + 0.5) - 0.5, min=0.0)
    i0 = torch.clamp(torch.floor(src), max=m + 1)
    frac = src - i0
    i1 = torch.clamp(i0 + 1, max=m + 1)
    grid = torch.arange(m + 2, dtype=torch.float32)
    weights = ((i0[..., None] == grid) * (1 - frac)[..., None] + (i1[..., None] == grid) * frac[..., None])
    return weights * inside[..., None]


def paste(maps: Tensor, boxes: Tensor, height: Tensor, width: Tensor) -> Tensor:
    """Float32 [K, H, W]: RoI maps [K, 1, M, M] pasted into an H x W image at ``boxes`` [K, 4] (xyxy image pixels),
    zero outside each box's canvas (``_axis_weights``)."""
    m = maps.shape[-1]
    padded = F.pad(maps[:, 0], (1, 1, 1, 1))
    rows = _axis_weights(boxes[:, 1], boxes[:, 3], height, m)
    cols = _axis_weights(boxes[:, 0], boxes[:, 2], width, m)
    return rows @ padded @ cols.transpose(1, 2)


class FullGraph(nn.Module):
    """Raw pixels -> image-size instances (see the module docstring).

    ``forward(image)``: float32 [H, W, C] raw values (grey: C = 1), any size. Returns ``label_image`` int32 [H, W]
    (0 background, k = row k - 1 of the others; at overlaps the higher score wins), ``masks`` uint8 [K, H, W],
    ``scores`` float32 [K] (descending, >= score_thresh), ``labels`` int64 [K] (1..C, the categories' ``label``),
    ``boxes`` float32 [K, 4] xyxy in image pixels.

    Args:
        model: a gains model (``build_model``), not changed (the graph holds a copy).
        norm: its input normalisation (``percentile`` or ``fixed``; see ``check_exportable``).
        score_thresh, mask_thresh: kept detections have ``score >= score_thresh``; masks ``prob >= mask_thresh``.
    """

    def __init__(self, model: nn.Module, norm: Normalisation, score_thresh: float, mask_thresh: float = 0.5) -> None:
        super().__init__()
        check_exportable(norm)
        tr = model.transform
        self.norm, self.score_thresh, self.mask_thresh = norm, float(score_thresh), float(mask_thresh)
        self.test_scale = None if tr.test_scale is None else float(tr.test_scale)
        self.test_size, self.max_size = int(tr.test_size), int(tr.max_size)
        self.net: MaskRCNNGraph = inference_graph(model)
        rpn = self.net.rpn
        self.base = (int(rpn._pre_nms_top_n["testing"]), int(rpn._post_nms_top_n["testing"]),
                     int(self.net.box_heads.detections_per_img))
        self.test_area, self.largest = float(self.test_size) ** 2, largest_training_area(tr)
        self.net.rpn = AreaScaledRPN.of(rpn)
        self.eval()

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        size = torch._shape_as_tensor(image)
        height, width = size[0], size[1]
        x = normalise(image, self.norm)
        h, w = network_size(height, width, self.test_scale, self.test_size, self.max_size)
        x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        pre, post, det = scaled_limits(h, w, self.base, self.test_area, self.largest)
        rpn, heads = self.net.rpn, self.net.box_heads
        rpn.pre_limit = pre
        rpn._post_nms_top_n["testing"], heads.detections_per_img = post, det  # sliced as tensors: dynamic
        try:
            boxes, scores, labels, probs, _, _ = self.net.detect(x)
        finally:
            rpn._post_nms_top_n["testing"], heads.detections_per_img = self.base[1], self.base[2]
        ratio = torch.stack([width.float() / w.float(), height.float() / h.float()]).repeat(2)  # x, y, x, y
        boxes = boxes * ratio
        keep = scores >= self.score_thresh
        boxes, scores, labels, probs = boxes[keep], scores[keep], labels[keep], probs[keep]
        masks = (paste(probs, boxes, height, width) >= self.mask_thresh).to(torch.uint8)
        found = masks.flatten(1).amax(dim=1) > 0  # the predictor drops instances whose mask is empty
        masks, scores, labels, boxes = masks[found], scores[found], labels[found], boxes[found]
        background = torch.zeros_like(image[..., 0], dtype=torch.uint8)[None]  # [1, H, W]: argmax 0 off every mask
        stack = torch.cat([background, masks], dim=0)
        label_image = stack.argmax(dim=0).to(torch.int32)  # the first (highest-scoring) instance at each pixel
        return label_image, masks, scores, labels, boxes


# Exported vs eager full graph: boxes and scores as max |difference|, masks and the label image as the fraction of
# pixels that differ (a probability within float error of mask_thresh may flip)
TOLERANCE = {"boxes": 1e-2, "scores": 1e-4, "masks": 1e-3, "label_image": 1e-3}


def raw_example(image: Tensor, norm: Normalisation) -> Tensor:
    """Float32 [H, W, 1] raw values from a [3, H, W] image in [0, 1] (its first channel): 0..255, or the span of
    a ``fixed`` normalisation, so that the graph maps it back to the same [0, 1] input."""
    lo, hi = (0.0, 255.0) if norm.mode != "fixed" else (float(v) for v in norm.value_range)
    return (lo + image[0] * (hi - lo))[..., None].contiguous()


def to_bytes(full: FullGraph, example: Tensor, opset: int) -> bytes:
    """The ONNX model of the full graph traced on ``example`` (float32 [H, W, C]; the model must detect something
    on it before the score threshold), with dynamic H, W, C and instances."""
    from gains.export.onnx import export_module

    dims = {0: "height", 1: "width"}
    outputs = {"label_image": dims, "masks": {0: "instances", 1: "height", 2: "width"},
               **{n: {0: "instances"} for n in OUTPUT_NAMES[2:]}}
    return export_module(full, example, opset, {INPUT_NAME: {**dims, 2: "channels"}}, outputs)


def differences(a: dict[str, Tensor], b: dict[str, Tensor]) -> dict[str, float]:
    """Two runs of the full graph compared by ``TOLERANCE``'s measures (``inf`` when the instances differ in
    number or labels)."""
    if a["labels"].shape != b["labels"].shape or not torch.equal(a["labels"].long(), b["labels"].long()):
        return dict.fromkeys(TOLERANCE, float("inf"))
    out = {}
    for k in TOLERANCE:
        x, y = a[k].double(), b[k].double()
        if not x.numel():
            out[k] = 0.0
        elif k in ("boxes", "scores"):
            out[k] = float((x - y).abs().max())
        else:
            out[k] = float((x != y).double().mean())
    return out


def describe(meta: dict[str, Any], score_thresh: float, mask_thresh: float) -> dict[str, Any]:
    """The sidecar of a full-graph export: the plain graph's (``export_run.describe``) with what goes in and out
    and where each step runs rewritten for ``FullGraph``."""
    meta = dict(meta)
    intensity = dict(meta["input"]["intensity"])
    intensity["range"] = "done in the graph: raw values in, [0, 1] inside"
    meta["input"] = {**meta["input"], "name": INPUT_NAME, "shape": ["H", "W", "C"], "dtype": "float32",
                     "intensity": intensity, "values": "the image's own values as float32 (any range, any H x W; "
                     "grey as C = 1)"}
    meta["outputs"] = {
        "label_image": "int32 [H, W]: 0 background, k > 0 the instance in row k - 1 of the outputs below; where "
                       "masks overlap, the higher score wins",
        "masks": "uint8 [K, H, W] full-size masks (0/1), overlaps kept",
        "scores": f"float32 [K], descending, >= score_thresh ({score_thresh:g})",
        "labels": "int64 [K], 1..C: categories[].label",
        "boxes": "float32 [K, 4] xyxy in image pixels",
    }
    meta["in_graph"] = ["intensity normalisation", "resize to network scale",
                        "detection limits scaled with the network image area (as gains predict)", *meta["in_graph"],
                        "boxes back to image pixels", "score >= score_thresh", "mask pasting at full size",
                        "mask >= mask_thresh, empty masks dropped", "label image"]
    meta["outside_graph"] = ["tiling large images (memory grows with K x H x W)", "GA maps (not output)"]
    meta["score_thresh"], meta["mask_thresh"] = float(score_thresh), float(mask_thresh)
    meta["paste"] = "in the graph, as gains predict pastes (gains.export.full.paste)"
    return meta
