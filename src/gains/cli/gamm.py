"""``gains gamm``: GA maps of a COCO dataset (see ``gains.gamm``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from gains.cli.args import int_at_least, non_negative_float, non_negative_int, positive_float, positive_int

log = logging.getLogger("gains")


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains gamm`` to the subcommands."""
    p = sub.add_parser("gamm", help="compute GA maps of a COCO dataset",
                       description="Gradient Anomaly Mapping: per-annotation GA maps of a COCO instances file.")
    p.add_argument("annotations", type=Path, help="COCO instances JSON")
    p.add_argument("--images", type=Path, required=True, help="folder the JSON's file_name entries are in")
    p.add_argument("--variant", choices=("isbi", "chrom", "nuclei"), required=True,
                   help="which published GAMM script to reproduce")
    p.add_argument("--window-size", type=int_at_least(2), help="sliding window side (default per variant: 5/5/8)")
    p.add_argument("--ga-factor", type=positive_float, help="maps lie in [1, 1 + F] (default 0.5/0.5/0.8)")
    p.add_argument("--overlap-hl", type=non_negative_float, help="overlap highlight (default 0.1/0.3/0.1)")
    p.add_argument("--target-category", type=int, help="category id that gets maps (default: smallest id)")
    p.add_argument("--raw", action="store_true", help="reference values bit for bit, NaN and all-zero maps kept")
    p.add_argument("--anchor", choices=("topleft", "center"), default="topleft",
                   help="window anchoring: the reference's top-left (default) or centred")
    p.add_argument("--every-category", action="store_true",
                   help="maps for every category, each computed as the target in turn (ignores --target-category)")
    p.add_argument("--zero-maps", choices=("ones", "keep"), default="ones",
                   help="the nuclei variant's all-zero maps: replaced by ones (default) or kept as the reference "
                   "trains")
    p.add_argument("--out", type=Path, help="store folder (default: ./gamm_<variant>_ws.._f.._ol..)")
    p.add_argument("--export-npy", type=Path, metavar="DIR", help="also write DIR/<annotation_id>.npy (float64)")
    p.add_argument("--precision", choices=("float16", "float32"), default="float16", help="stored precision")
    p.add_argument("--workers", type=positive_int, default=1, help="processes working on images in parallel")
    p.add_argument("--preview", type=non_negative_int, default=0, metavar="K", help="write PNG previews of K images")
    p.add_argument("--skip-invalid", action="store_true", help="skip bad annotations/images, count them")
    p.add_argument("--overwrite", action="store_true", help="replace a store made with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compute (or reuse) the maps, print what was done, and write the previews asked for."""
    from gains.gamm import GammParams, GammStore, run_gamm

    params = GammParams.for_variant(args.variant, window_size=args.window_size, ga_factor=args.ga_factor,
                                    overlap_hl=args.overlap_hl, target_category=args.target_category,
                                    anchor=args.anchor, every_category=args.every_category,
                                    zero_maps=args.zero_maps)
    out = args.out
    if out is None and args.export_npy is None:
        out = Path(f"gamm_{params.tag}")
    result = run_gamm(args.annotations, args.images, params, out=out, export_npy=args.export_npy, raw=args.raw,
                      precision=args.precision, workers=args.workers, skip_invalid=args.skip_invalid,
                      overwrite=args.overwrite, progress=not args.quiet)
    for problem in result.skipped:
        log.warning("skipped: %s", problem)
    if result.up_to_date:
        print(f"{out}: up to date ({result.n_maps} maps)")
    else:
        print(f"{result.n_maps} GA maps of {result.n_images} images in {result.seconds:.1f} s"
              f" ({result.n_computed_images} images computed)" + (f" -> {out}" if out else ""))
    if result.n_nan or result.n_zero:
        print(f"sanitised: {result.n_nan} NaN maps and {result.n_zero} all-zero maps replaced by ones")
    if result.skipped:
        print(f"skipped {len(result.skipped)} invalid items (--skip-invalid)")
    if args.export_npy is not None:
        print(f"exported .npy maps to {args.export_npy}")
    if args.preview:
        from gains.visualize import gamm_previews

        if out is not None:
            load = GammStore(out).load
        else:
            import numpy as np

            def load(ann_id: int):
                return np.load(Path(args.export_npy) / f"{ann_id}.npy")

        base = out if out is not None else args.export_npy
        paths = gamm_previews(args.annotations, args.images, load, result.params.ga_factor, args.preview,
                              Path(base) / "preview")
        print(f"wrote {len(paths)} previews to {Path(base) / 'preview'}")
    return 0
