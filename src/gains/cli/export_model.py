"""``gains export-model``: a trained model as a TorchScript or ONNX file for Fiji, QuPath, DeepImageJ and other
hosts (see ``gains.export``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gains.cli.args import positive_int


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains export-model`` to the subcommands."""
    p = sub.add_parser("export-model", help="export a model to TorchScript or ONNX (+ a sidecar JSON)",
                       description="Write the model's inference graph (normalised [3, h, w] image at the network's "
                                   "scale -> boxes, scores, labels, M x M masks, GA maps) to FILE and what a host does "
                                   "around it (intensity normalisation, scale, mask pasting) to FILE.json (for ONNX "
                                   "also into FILE's metadata); --full puts all of it inside an ONNX graph.")
    p.add_argument("checkpoint", help="run folder, checkpoint file or shipped model name (gains models)")
    p.add_argument("--to", required=True, metavar="FORMAT", help="torchscript or onnx")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="the exported file (e.g. nuclei.pt, "
                   "nuclei.onnx); the sidecar is FILE.json")
    p.add_argument("--overwrite", action="store_true", help="replace FILE and FILE.json if they exist")
    p.add_argument("--opset", type=positive_int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--full", action="store_true",
                   help="ONNX only: a self-contained graph, raw (H, W, C) float32 pixels in -> label image [H, W], "
                        "full-size masks [K, H, W], scores, labels and boxes in image pixels out (normalisation, "
                        "scale, limits and mask pasting inside, as gains predict --tile 0 does them)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip running the export against the eager model on two synthetic images")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="inference settings, e.g. model.detections_per_img=300")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export, print the check against the eager model, and what was written."""
    from gains.export.export_run import export_model

    s = export_model(args.checkpoint, args.to, args.out, overwrite=args.overwrite, overrides=args.overrides,
                     opset=args.opset, check=args.check, full=args.full)
    if s["max_abs_diff"] is not None:
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in s["max_abs_diff"].items())
        print(f"checked against the eager model on two synthetic images: max |difference| {diffs}")
    elif s["note"]:
        print(s["note"])
    print(f"wrote {s['out']} ({s['bytes'] / 2**20:.1f} MiB) and {s['sidecar']} in {s['seconds']:.0f} s")
    if args.to == "torchscript":
        print(f"to load it: {s['load']}")
    return 0
