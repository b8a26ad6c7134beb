"""``gains convert LAYOUT``: a dataset layout into the canonical form, annotations.json (COCO, RLE) + images/
(see the converters in ``gains.data``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gains.cli.args import positive_int


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``gains convert`` and its layouts (dsb2018, isbi2014, labels, masks, coco) to the subcommands."""
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
    d.set_defaults(func=run)
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
        q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert with the layout's converter and print what was written."""
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
