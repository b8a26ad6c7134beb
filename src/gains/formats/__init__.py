"""Output formats: one small module per format and the registry ``FORMATS`` that names them.

``gains predict --format`` and ``gains export --to`` write through ``FORMATS`` alone and take their choices
and help from it, so a new format is one module here plus one line below. A format module has:

- ``COMMANDS``: the commands that offer it, ``("predict",)``, ``("export",)`` or both (export writes a
  dataset's ground truth, ``ImageResult.truth``);
- ``HELP``: a few words for ``--help``;
- ``write(result: ImageResult, out_dir: Path, stem: str) -> list[Path]``: write one image's files
  (named from ``stem``) into ``out_dir``; returns them. A ``ValueError`` means the instances cannot be
  written in this format (``gains export`` reports it as one line naming the image);
- only where one file covers every image of a run (``coco``): ``collect(result) -> part`` (plain data, sent
  between processes under ``torchrun``) and ``finish(out_dir, parts, categories) -> list[Path]``, called once
  with every image's part in image order.

The writers take :class:`gains.formats.result.ImageResult`. The ImageJ and QuPath outlines are traced exactly
along pixel edges (:mod:`.contours`) from :mod:`.records`. Depends on numpy and ``gains.core`` (plus roifile,
contourpy, Pillow, tifffile, matplotlib and scikit-image where a format needs them), never on torch;
``gains.inference`` and the CLI use it, ``gains.data``, ``models`` and ``engine`` never import it.
"""

from __future__ import annotations

from types import ModuleType

from gains.errors import InputError
from gains.formats import coco, ga, geojson, imagej, labels, masks, measurements, omezarr, overlay

FORMATS: dict[str, ModuleType] = {
    "coco": coco,
    "labels": labels,
    "masks": masks,
    "overlay": overlay,
    "ga": ga,
    "imagej": imagej,
    "geojson": geojson,
    "csv": measurements,
    "omezarr": omezarr,
}


def names(command: str) -> list[str]:
    """The formats ``command`` (``predict`` or ``export``) offers, in registry order."""
    return [name for name, module in FORMATS.items() if command in module.COMMANDS]


def describe(command: str) -> str:
    """``name (help), ...`` of the formats ``command`` offers: its ``--help`` text."""
    return ", ".join(f"{name} ({FORMATS[name].HELP})" for name in names(command))


def select(asked: list[str], command: str) -> dict[str, ModuleType]:
    """The modules of the formats ``asked`` for, in the order asked, each once.

    Raises:
        InputError: a name ``command`` does not offer, as one line listing those it does.
    """
    offered = names(command)
    bad = sorted(set(asked) - set(offered))
    if bad:
        raise InputError(f"unknown output format {bad[0]!r}; choose from {', '.join(offered)}")
    return {name: FORMATS[name] for name in asked}
