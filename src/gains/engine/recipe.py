"""What to train on a user's folder: ``gains train DIR --weights NAME --minutes M --out RUN``, no YAML.

``train_folder`` reads the folder's layout (``detect_layout``: a canonical dataset, with or without the split files
of ``gains split``; images + label images; one folder per image with mask files; the last two are converted into
``RUN/data`` by ``gains.data.folders``), then builds the config from measurements and says each choice in one line:

- the recipe: the ``RECIPE`` preset (``dsb2018_cluster_cpu``): of the CPU presets the one made for real microscopy
  images, with the per-image percentile normalisation that suits 8- and 16-bit files alike (``isbi2014_cpu`` divides
  8-bit values by 255) and the anchors (8-128 px) of the shipped models; a starting model keeps its own architecture,
  anchors and normalisation and takes only the recipe's proposal and RoI counts;
- a seeded validation split (``VAL_SHARE`` of the images, at least one) when the folder has no split files; a
  folder of one image trains and validates on it, with a warning (the correct-and-retrain loop starts that way);
- the GAMM variant from the pairs ``gains stats`` counts (``choose_variant``);
- the scale that brings the data's median object diameter (of the category with the smallest objects, which must
  stay large enough to be found) to the one the starting model was trained at (``choose_scale``);
  ``model.test_scale`` records it, so ``gains predict RUN`` applies it;
- ``data.crop_size`` (``CROP`` network pixels, at most the largest image at that scale).

Every refusal is one ``InputError`` line, raised before the run folder is made or with it removed again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gains import outputs, zoo
from gains.config import (
    Config,
    ModelConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    saved_config,
)
from gains.core.coco import load_coco
from gains.core.images import IMAGE_SUFFIXES
from gains.data.folders import convert_labels, convert_masks
from gains.data.split import split_dataset
from gains.data.stats import dataset_stats, object_sizes
from gains.engine.checkpoint import checkpoint_path, load_checkpoint
from gains.engine.train import fit, open_run
from gains.errors import InputError

RECIPE = "dsb2018_cluster_cpu"
# the recipe's settings a starting model takes (the rest of its model section is the starting model's own)
RECIPE_MODEL_KEYS = ("rpn_pre_nms_top_n_train", "rpn_post_nms_top_n_train", "rpn_pre_nms_top_n_test",
                     "rpn_post_nms_top_n_test", "box_batch_size_per_image")
VAL_SHARE = 0.2
CROP = 512
LABEL_FOLDERS = ("labels", "masks")  # beside images/: label images with the images' stems
DATA_KEYS = ("data.train", "data.val", "data.test", "data.images", "data.synthetic")
# the GAMM variant for each kind of pair, and the word the choice is explained with
VARIANT_OF = {"overlap": ("isbi", "overlap"), "cross": ("chrom", "crossing"), "touch": ("nuclei", "touching")}


def _image_stems(folder: Path) -> set[str]:
    return {p.stem for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def detect_layout(folder: Path) -> tuple[str, Path | None]:
    """The layout of ``folder``: ``canonical`` (``annotations.json`` or ``train.json`` + ``val.json``), ``labels``
    (``images/`` + a ``LABEL_FOLDERS`` folder of label images with the same stems; the second item names it) or
    ``masks`` (sub-folders holding ``masks/``).

    Raises:
        InputError: no folder, none of the layouts, or more than one (naming them).
    """
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder" if not folder.exists() else f"{folder}: not a folder")
    found: list[tuple[str, Path | None]] = []
    if (folder / "annotations.json").is_file() or (folder / "train.json").is_file():
        found.append(("canonical", None))
    images = folder / "images"
    if images.is_dir():
        stems = _image_stems(images)
        found += [("labels", folder / name) for name in LABEL_FOLDERS
                  if (folder / name).is_dir() and stems & _image_stems(folder / name)]
    if any(p.is_dir() and (p / "masks").is_dir() for p in folder.iterdir()):
        found.append(("masks", None))
    expected = ("expected annotations.json + images/ (a dataset of `gains convert`), images/ + labels/ (label "
                "images with the images' names) or one folder per image holding images/ and masks/")
    if not found:
        raise InputError(f"{folder}: no annotations found; {expected}")
    if len(found) > 1:
        kinds = ", ".join(kind + (f" ({where.name}/)" if where else "") for kind, where in found)
        raise InputError(f"{folder}: ambiguous layout, holds {kinds}; {expected}, one of them only")
    return found[0]


@dataclass(frozen=True)
class StartingModel:
    """The model a run starts from: ``weights`` for ``model.weights``, its model settings (None: from scratch)
    and its GAMM variant."""

    weights: str
    label: str
    model: ModelConfig | None
    variant: str | None


def starting_model(spec: str) -> StartingModel:
    """``--weights``: ``none``, a shipped model's name, a checkpoint file or a run folder.

    Raises:
        InputError: an unknown name, a missing or unreadable checkpoint.
    """
    if spec == "none":
        return StartingModel("none", "no starting model", None, None)
    if zoo.is_name(spec):
        cfg = saved_config(zoo.load(spec)["config"])
        return StartingModel(spec, f"{spec} model", cfg.model, cfg.gamm.variant)
    zoo.check_spec(spec)
    path = checkpoint_path(spec)
    cfg = saved_config(load_checkpoint(path)["config"])
    return StartingModel(str(path), f"model {path}", cfg.model, cfg.gamm.variant)


def choose_variant(stats: dict[str, Any], fallback: str) -> tuple[str, str]:
    """(GAMM variant, one-line reason) from ``dataset_stats``: the kind of pair the data holds most of (overlapping
    but not crossing -> ``isbi``, crossing -> ``chrom``, touching -> ``nuclei``; ties in that order); ``fallback``
    when there are no pairs."""
    cross = stats["cross_pairs"]
    counts = {"overlap": stats["overlap_pairs"] - cross, "cross": cross, "touch": stats["touch_pairs"]}
    seen = f"overlapping pairs {stats['overlap_pairs']} (crossing {cross}), touching {stats['touch_pairs']}"
    if not any(counts.values()):
        return fallback, f"{seen}: variant {fallback} (no pairs to choose by; the starting model's)"
    kind = max(counts, key=lambda k: counts[k])  # the first of the largest: dict order breaks ties
    variant, word = VARIANT_OF[kind]
    return variant, f"{seen}: variant {variant} ({word})"


def choose_scale(size: float, start: StartingModel, scale: float | None = None, what: str = "") -> tuple[float, str]:
    """(scale, one-line reason): ``scale`` when given, else the starting model's object size over the data's median
    object diameter ``size`` (image pixels; ``what`` says which objects), rounded to 4 decimals; 1 (native pixels)
    without a starting model that records an object size."""
    said = f"objects ~{size:.0f} px{what}"
    if scale is not None:
        return scale, f"{said}: training and predicting at scale {scale:.3g} (--scale)"
    model_size = start.model.object_size if start.model is not None else None
    if model_size is None:
        why = "no starting model" if start.model is None else f"{start.label} records no object size"
        return 1.0, f"{said}, {why}: training and predicting at scale 1 (native)"
    s = round(model_size / size, 4)
    return s, f"{said}, {start.label} saw ~{model_size:.0f} px: training and predicting at scale {s:.3g}"


@dataclass(frozen=True)
class FolderData:
    """The annotation files a run trains and validates on (``images`` None: ``images/`` beside them)."""

    train: Path
    val: Path
    test: Path | None
    images: Path | None
    note: str


def _images_of(path: Path) -> int:
    return len(load_coco(path).images)


def split_files(root: Path, out: Path, seed: int, name: str | Path | None = None) -> FolderData:
    """The train/val files of a canonical dataset folder ``root``: its own split files when it has train.json and a
    val.json with images, else a seeded split of ``annotations.json`` into ``out`` (``VAL_SHARE`` of the images
    held out, at least one; one image: trained and validated on).

    Raises:
        InputError: no images, no annotations.
    """
    if (root / "train.json").is_file() and (root / "val.json").is_file() and _images_of(root / "val.json"):
        test = root / "test.json"
        return FolderData(root / "train.json", root / "val.json", test if test.is_file() else None, None,
                          f"validation: {root / 'val.json'} ({_images_of(root / 'val.json')} images)")
    ann = root / "annotations.json"
    if not ann.is_file():
        raise InputError(f"{root}: train.json without a val.json that holds images, and no annotations.json to split")
    n = _images_of(ann)
    if n == 0:
        raise InputError(f"{ann}: no images, nothing to train on")
    images = None if out == root else root / "images"
    if n == 1:
        return FolderData(ann, ann, None, images, "validation: WARNING one image only: trained and validated on "
                          "it (the score says how well it fits, not how well it generalises)")
    out.mkdir(parents=True, exist_ok=True)
    parts = split_dataset(root, (1 - VAL_SHARE, VAL_SHARE, 0), seed=seed, out=out)
    held = _images_of(parts["val"])
    return FolderData(parts["train"], parts["val"], None, images,
                      f"validation: {held} of {n} images held out (seed {seed}; no split files in {name or root})")


def _recipe_config(start: StartingModel, variant: str, scale: float, size: float, data: FolderData,
                   stats: dict[str, Any], minutes: float | None) -> dict[str, Any]:
    """The config (nested dicts) before the user's ``--set``: the recipe with the choices made (``scale``, and the
    objects' ``size`` in image pixels)."""
    cfg: Config = load_config(RECIPE)
    out = config_to_dict(cfg)
    if start.model is not None:
        model = config_to_dict(Config(model=start.model))["model"]
        model.update({k: out["model"][k] for k in RECIPE_MODEL_KEYS})
        out["model"] = model
    dets = max(100, math.ceil(1.5 * stats["instances_per_image"]["max"]))
    out["model"].update(weights=start.weights, weights_heads=True, num_classes=None, detections_per_img=dets,
                        test_scale=scale, object_size=round(size * scale, 2))
    out["eval"]["max_dets"] = dets
    out["gamm"] = {"variant": variant}
    where = {k: str(p.resolve()) if p is not None else None
             for k, p in (("train", data.train), ("val", data.val), ("test", data.test), ("images", data.images))}
    out["data"].update(**where, crop_size=CROP)
    out["train"].update(device="auto", max_minutes=minutes)
    return out


def _largest_side(annotations: Path) -> int:
    return max((max(im.height or 0, im.width or 0) for im in load_coco(annotations).images), default=0)


def folder_config(folder: Path, run_dir: Path, layout: tuple[str, Path | None], start: StartingModel,
                  minutes: float | None, scale: float | None, object_size_px: float | None,
                  overrides: Sequence[str], say: Callable[[str], None]) -> Config:
    """Convert ``folder`` into ``run_dir/data`` if needed, split it, measure it and build the run's config, saying
    each choice; ``run_dir`` must be claimed by the caller.

    Raises:
        InputError: no annotations, images without masks or labels, a ``--set`` key DIR decides.
    """
    kind, labels = layout
    root = folder
    if kind != "canonical":
        root = run_dir / "data"
        if not (root / "annotations.json").is_file():  # a resumed run converted it already
            if kind == "labels":
                convert_labels(folder / "images", labels, root)
            else:
                convert_masks(folder, root)
    said = {"canonical": "a canonical dataset (annotations.json + images/)",
            "labels": f"images/ + label images in {labels.name if labels else ''}/, converted into {root}",
            "masks": f"one folder per image with masks/, converted into {root}"}[kind]
    data = split_files(root, root if root != folder else run_dir / "data", seed=0, name=folder)
    stats = dataset_stats(data.train)
    if stats["instances"] == 0:
        raise InputError(f"{data.train}: no annotations, nothing to train on")
    say(f"data: {folder} is {said}: {stats['images']} training images, {stats['instances']} instances")
    say(data.note)
    variant, why = choose_variant(stats, start.variant or "isbi")
    say(f"GAMM: {why}")
    sizes = object_sizes(data.train)
    smallest = min(sizes, key=lambda c: sizes[c])
    names = {c["id"]: c.get("name", str(c["id"])) for c in load_coco(data.train).categories}
    what = (" (--object-size)" if object_size_px else
            f" ({names.get(smallest, smallest)}, the smallest of {len(sizes)} categories)" if len(sizes) > 1 else "")
    size = object_size_px or sizes[smallest]
    s, why = choose_scale(size, start, scale, what)
    say(f"scale: {why}")
    out = _recipe_config(start, variant, s, size, data, stats, minutes)
    say(f"recipe: {RECIPE} ({start.label}; " + (f"{minutes:g} minutes" if minutes else
        f"{out['train']['max_iters']} iterations") + "; --set section.key=value changes any setting)")
    cfg = apply_overrides(config_from_dict(out), list(overrides))
    side = math.ceil(_largest_side(data.train) * cfg.model.test_scale)
    crop = cfg.data.crop_size
    if crop is not None and crop > side:
        say(f"crop: {crop} px is larger than the images at scale {cfg.model.test_scale:.3g} ({side} px at most): "
            f"crop {max(side, 32)} px, whole images")
        cfg = apply_overrides(cfg, [f"data.crop_size={max(side, 32)}"])
    elif crop is not None:
        say(f"crop: {crop} px windows of the images at scale {cfg.model.test_scale:.3g}")
    return cfg


def train_folder(folder: str | Path, run_dir: str | Path, weights: str = "nuclei", minutes: float | None = None,
                 scale: float | None = None, object_size_px: float | None = None, overrides: Sequence[str] = (),
                 resume: bool = False, overwrite: bool = False, progress: bool = True,
                 say: Callable[[str], None] = print) -> dict[str, Any]:
    """Train on a user's folder with the recipe of this module; returns ``fit``'s summary.

    Args:
        folder: a dataset folder (``detect_layout``); read only.
        run_dir: the run folder (``gains.engine.train.open_run``); a converted layout's dataset goes into its
            ``data/``. Any refusal leaves no folder behind that this call made.
        weights: ``--weights``; ``minutes``: ``train.max_minutes`` (None: the recipe's iterations);
            ``scale`` / ``object_size_px``: ``--scale`` / ``--object-size`` (see ``choose_scale``).
        overrides: ``--set`` items, applied after the recipe (not the data keys, which ``folder`` decides).
        say: where the one-line notes go.

    Raises:
        InputError: see ``detect_layout``, ``starting_model``, ``folder_config``.
    """
    folder, run_dir = Path(folder), Path(run_dir)
    if scale is not None and object_size_px is not None:
        raise InputError("give --scale or --object-size, not both")
    taken = [o for o in overrides if o.split("=", 1)[0].strip() in DATA_KEYS]
    if taken:
        raise InputError(f"--set {taken[0]}: DIR decides the data; drop it or train with --config instead")
    layout = detect_layout(folder)
    outputs.check_apart(run_dir, [folder])
    start = starting_model(weights)
    held = open_run(run_dir, resume, overwrite)
    try:
        cfg = folder_config(folder, run_dir, layout, start, minutes, scale, object_size_px, overrides, say)
    except Exception:
        held.discard()
        raise
    finally:
        held.release()
    try:
        return fit(cfg, run_dir, resume=resume, progress=progress)
    except Exception:
        if not any((run_dir / f).exists() for f in ("last.pt", "best.pt")):
            held.discard()  # nothing to resume from: the converted data and split files go too
        raise


__all__ = ["StartingModel", "choose_scale", "choose_variant", "detect_layout", "folder_config", "split_files",
           "starting_model", "train_folder"]
