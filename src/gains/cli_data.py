"""Data subcommands of the ``gains`` command: synth, convert, split, stats, export."""

from __future__ import annotations

import argparse
from pathlib import Path

from gains.cli_args import non_negative_int, positive_int
from gains.errors import InputError
from gains.formats import describe, names


def add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate synthetic overlapping/touching/crossing scenes",
                       description="Write a canonical dataset of synthetic CTO scenes.")
    p.add_argument("kind", choices=("overlap", "touch", "cross"))
    p.add_argument("--n", type=int, default=100, help="number of images (>= 1)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (>= 32)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> int:
    from gains.data.synth import write_synthetic

    try:
        path = write_synthetic(args.kind, args.n, args.size, args.seed, args.out, overwrite=args.overwrite)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    print(f"wrote {args.n} {args.kind} scenes to {path.parent}")
    return 0


def add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a dataset layout into the canonical form",
                       description="Convert a dataset into the canonical form: annotations.json (COCO, RLE) + images/.")
    kinds = p.add_subparsers(dest="layout", required=True)
    d = kinds.add_parser("dsb2018", help="Kaggle DSB2018 folders: <id>/images/<id>.png + <id>/masks/*.png")
    d.add_argument("root", type=Path, help="the stage1_train folder")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--subset", type=Path, help="text file of image ids to keep, one per line")
    d.add_argument("--workers", type=positive_int, default=1)
    d.add_argument("--overwrite", action="store_true")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_convert)
    i = kinds.add_parser("isbi2014", help="ISBI2014 training images + isbi_train_GT.mat")
    i.add_argument("images", type=Path, help="folder of 1.tif .. 45.tif")
    i.add_argument("--gt", type=Path, required=True, help="isbi_train_GT.mat")
    lab = kinds.add_parser("labels", help="images + label images (PNG/TIFF, 8/16/32-bit) with the same stems")
    lab.add_argument("images", type=Path)
    lab.add_argument("--labels", type=Path, required=True)
    m = kinds.add_parser("masks", help="one folder per image: images/<file> + masks/<one file per instance>")
    m.add_argument("root", type=Path)
    for q in (lab, m):
        q.add_argument("--category", default="object", help="category name of the instances")
    c = kinds.add_parser("coco", help="normalise any COCO instances file (polygons, RLE)")
    c.add_argument("annotations", type=Path)
    c.add_argument("--images", type=Path, required=True)
    for q in (i, lab, m, c):
        q.add_argument("--out", type=Path, required=True)
        q.add_argument("--overwrite", action="store_true")
        q.set_defaults(func=_cmd_convert)


def _cmd_convert(args: argparse.Namespace) -> int:
    import json

    if args.layout == "dsb2018":
        from gains.data.dsb2018 import convert_dsb2018

        path = convert_dsb2018(args.root, args.out, subset=args.subset, workers=args.workers,
                               overwrite=args.overwrite, progress=not args.quiet)
    elif args.layout == "isbi2014":
        from gains.data.isbi2014 import convert_isbi2014

        path = convert_isbi2014(args.images, args.gt, args.out, overwrite=args.overwrite)
    elif args.layout == "labels":
        from gains.data.folders import convert_labels

        path = convert_labels(args.images, args.labels, args.out, category=args.category, overwrite=args.overwrite)
    elif args.layout == "masks":
        from gains.data.folders import convert_masks

        path = convert_masks(args.root, args.out, category=args.category, overwrite=args.overwrite)
    else:
        from gains.data.normalise import convert_coco

        path = convert_coco(args.annotations, args.images, args.out, overwrite=args.overwrite)
    doc = json.loads(path.read_text())
    print(f"wrote {len(doc['images'])} images and {len(doc['annotations'])} instances to {path.parent}")
    return 0


def add_dataset_tools(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help="write seeded train/val/test json next to annotations.json")
    p.add_argument("folder", type=Path, help="canonical dataset folder")
    p.add_argument("--ratios", default="6:2:2", help="train:val:test (default 6:2:2)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--preset", choices=("isbi2014-30-15",), help="a fixed named split instead of ratios")
    p.set_defaults(func=_cmd_split)
    p = sub.add_parser("stats", help="images, instances, per-image counts, overlap/touch pairs")
    p.add_argument("folder", type=Path, help="canonical dataset folder (or an annotations JSON)")
    p.add_argument("--json", type=Path, help="also write the numbers as JSON")
    p.set_defaults(func=_cmd_stats)
    p = sub.add_parser("export", help=f"canonical dataset -> {', '.join(names('export'))}",
                       description=f"Write a canonical dataset's ground truth in one format: {describe('export')}.")
    p.add_argument("folder", type=Path)
    p.add_argument("--to", choices=names("export"), required=True, help=describe("export"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_export)


def _cmd_split(args: argparse.Namespace) -> int:
    from gains.data.split import split_dataset

    try:
        ratios = tuple(float(r) for r in args.ratios.split(":"))
    except ValueError as exc:
        raise InputError(f"--ratios must look like 6:2:2, got {args.ratios!r}") from exc
    paths = split_dataset(args.folder, ratios, args.seed, args.preset)
    import json

    for name, path in paths.items():
        print(f"{name:5s} {len(json.loads(path.read_text())['images']):5d} images -> {path}")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    import json

    from gains.data.stats import dataset_stats, format_stats

    ann = args.folder / "annotations.json" if args.folder.is_dir() else args.folder
    stats = dataset_stats(ann)
    print(format_stats(stats))
    if args.json:
        from gains.atomic import atomic_write

        payload = json.dumps(stats, indent=1).encode()
        atomic_write(args.json, lambda fh: fh.write(payload))  # a failed write leaves no empty or half file
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from gains.formats.export import export_dataset

    out = export_dataset(args.folder, args.to, args.out, overwrite=args.overwrite)
    print(f"exported {args.folder} as {args.to} to {out}")
    return 0
