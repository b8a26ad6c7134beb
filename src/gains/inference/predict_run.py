"""``gains predict``: segment image files or folders and write the asked-for outputs (one process or torchrun)."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from gains import formats as registry
from gains import outputs
from gains.core import parallel as dist
from gains.core.images import IMAGE_SUFFIXES, check_input, check_inputs, read_planes
from gains.core.planes import PlaneChoice, label_plane
from gains.errors import InputError
from gains.formats.result import ImageResult
from gains.inference.predictor import PredictOptions, Predictor
from gains.intensity import Normalisation
from gains.sysinfo import peak_rss_mib

log = logging.getLogger("gains.predict")


def input_files(inputs: list[str | Path]) -> list[Path]:
    """Image files named directly or found (not recursively) in named folders, in sorted order."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    if not files:
        raise InputError("no image found in " + ", ".join(map(str, inputs)))
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        raise InputError("two inputs share a file name stem; outputs would collide")
    return files


def share(n_images: int, rank: int, world: int) -> list[int]:
    """Indices (into the run's images, 0..n_images-1) that process ``rank`` of ``world`` predicts.

    Image k goes to process k % world: the shares are disjoint, cover every image, differ in size by at most
    one, and every process computes all of them from the same ordered input list without talking to the others.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world}")
    return list(range(rank, n_images, world))


def predict_files(checkpoint: str | Path, inputs: list[str | Path], out: str | Path, formats: list[str],
                  options: PredictOptions | None = None, progress: bool = True, choice: PlaneChoice | None = None
                  ) -> dict[str, Any]:
    """Predict every input (the planes and channels ``choice`` picks, see ``gains.core.images``); returns a summary
    (images = planes predicted, instances, peak memory in MiB of the largest process, the scale used, and
    ``main``: whether this process is the one that reports).

    ``options``: how the checkpoint predicts (``Predictor.from_checkpoint``; default ``PredictOptions()``). Under
    ``torchrun``
    (WORLD_SIZE > 1) each process predicts its ``share`` of the images and writes their files; rank 0 gathers
    the records and writes ``results.json`` and ``images.json`` exactly as one process would. Every process must
    see the same output folder (a shared file system when the processes run on several machines).

    Raises:
        InputError: bad inputs or checkpoint, on every process alike; an output folder this call created is
            removed again.
    """
    writers = registry.select(formats, "predict")
    files = input_files(inputs)
    outputs.check_apart(out, inputs)
    choice = choice or PlaneChoice()
    images = check_inputs(files, choice)  # image k has id k + 1
    stems = [_stem(f, label) for f, label in images]
    clash = next((stem for stem, n in Counter(stems).items() if n > 1), None)  # every header read before the model
    if clash is not None:
        raise InputError(f"{clash}: two inputs (or planes) give the same output name; rename one")
    options = options or PredictOptions()
    torch_device = dist.resolve_device(options.device)
    joined = dist.world_size() == 1 and dist.init_distributed(torch_device)  # leave a caller's group alone
    main = dist.is_main()
    try:
        failure = None
        try:
            predictor = Predictor.from_checkpoint(checkpoint, options)
            norm, categories, scale = predictor.normalisation, predictor.categories, predictor.scale
            scaled = replace(choice, scale=scale or 1.0)
            for file in files:  # the limit on decoded pixels holds after an upscale too
                check_input(file, scaled)
        except Exception as exc:  # e.g. out of memory on one GPU: every process stops before the folder is made
            failure = (-1, exc)
        _agree(failure)
        world = dist.world_size()
        if world > 1 and main:
            log.info("predicting %d images on %d processes (image k on process k mod %d)", len(images), world, world)
        out = Path(out)
        held = _open_out(out)
        created = held is not None and held.created
        try:
            total, peak = _predict_into(out, images, predictor, norm, writers, categories, progress and main, choice,
                                        remove=out if created else None)
        except BaseException:
            if created:  # a failed run leaves nothing behind (files of an existing folder are kept)
                shutil.rmtree(out, ignore_errors=True)
            raise
        finally:
            if held is not None:
                held.release()
    finally:
        if joined:
            dist.cleanup()
    return {"images": len(images), "instances": total, "peak_mib": peak, "out": str(out), "scale": scale,
            "scale_note": predictor.scale_note, "main": main}


def _stem(file: Path, label: str) -> str:
    """Output name stem of one image: ``<file stem>`` or ``<file stem>_<plane label>`` (e.g. ``cells_z3_t0``)."""
    return f"{file.stem}_{label}" if label else file.stem


def _agree(failure: tuple[int, BaseException] | None, payload: Any = None, remove: Path | None = None) -> list[Any]:
    """Every process's ``payload`` in rank order, after checking that no process failed.

    ``failure`` is (index of the image that failed, or -1 before any image; the exception). When any process
    failed, rank 0 first removes the folder ``remove`` (the output folder this run created) while the others
    wait, so that none exits (and gets the rest stopped by torchrun) before it is gone; then every process
    raises the failure of the earliest image: its own exception where it is the one, else an ``InputError``
    with the same line (a ``RuntimeError`` naming the process for other errors).
    """
    note = None if failure is None else (failure[0], isinstance(failure[1], InputError), str(failure[1]))
    parts = dist.all_gather_objects((note, payload))
    failed = sorted((n[0], r, n[1], n[2]) for r, (n, _) in enumerate(parts) if n is not None)
    if failed:
        if remove is not None and dist.is_main():
            shutil.rmtree(remove, ignore_errors=True)
        dist.barrier()
        _, r, is_input, message = failed[0]
        if failure is not None and r == dist.rank():
            raise failure[1]
        raise InputError(message) if is_input else RuntimeError(f"process {r} failed: {message}")
    return [p for _, p in parts]


def _open_out(out: Path) -> outputs.Claim | None:
    """Rank 0 claims ``out`` (a new or empty folder, or predictions of ours: ``gains.outputs``), then every process
    checks that it sees it; returns rank 0's claim (None on the other ranks)."""
    held, failure = None, None
    if dist.is_main():
        try:
            held = outputs.claim(out, "predictions")
        except (OSError, InputError) as exc:
            failure = (-1, exc)
    _agree(failure)
    created = held is not None and held.created
    failure = None if out.is_dir() else (-1, InputError(f"{out}: output folder not visible from process "
                                                        f"{dist.rank()}; give a folder every process shares"))
    try:
        _agree(failure, remove=out if created else None)
    except BaseException:
        if held is not None:
            held.release()
        raise
    return held


def _predict_into(out: Path, images: list[tuple[Path, str]], predictor: Predictor, norm: Normalisation,
                  writers: dict[str, ModuleType], categories: list[dict[str, Any]], progress: bool, choice: PlaneChoice,
                  remove: Path | None = None) -> tuple[int, float]:
    """Predict this process's share of ``images`` (file, plane label) and write their files into ``out`` with
    ``writers`` (``gains.formats``); rank 0 writes the whole-run files (``finish``). Returns (instances of the
    whole run, largest peak memory of a process in MiB). On a failure anywhere, ``remove`` (the folder this run
    created, if any) is removed before any process raises."""
    mine = share(len(images), dist.rank(), dist.world_size())
    records: list[dict[str, Any]] = []
    failure = None
    try:
        for record in _predict_share(out, images, mine, predictor, norm, writers, categories, progress, choice):
            records.append(record)
    except Exception as exc:  # every process learns of it before anyone cleans up
        failure = (mine[len(records)] if len(records) < len(mine) else len(images), exc)
    parts = _agree(failure, (records, peak_rss_mib()), remove)
    merged = sorted((r for recs, _ in parts for r in recs), key=lambda r: r["id"])
    failure = None
    if dist.is_main():
        try:
            for name, module in writers.items():
                if hasattr(module, "finish"):
                    module.finish(out, [r["parts"][name] for r in merged], categories)
        except Exception as exc:
            failure = (len(images), exc)
    _agree(failure, remove=remove)
    return sum(r["instances"] for r in merged), max(peak for _, peak in parts)


def _predict_share(out: Path, images: list[tuple[Path, str]], mine: list[int], predictor: Predictor,
                   norm: Normalisation, writers: dict[str, ModuleType], categories: list[dict[str, Any]],
                   progress: bool, choice: PlaneChoice) -> Iterator[dict[str, Any]]:
    """Predict images ``mine`` (ascending indices into ``images``), writing their per-image files; yields per
    image {"id": its id, "parts": its part of each whole-run format (``collect``), "instances": how many}. A file
    is read once, for the planes of it in ``mine``. ``progress``: a bar of images, with the tiles of the current
    image after it (``tile_progress``)."""
    from tqdm import tqdm

    by_file: dict[Path, list[int]] = {}
    for k in mine:
        by_file.setdefault(images[k][0], []).append(k)
    with tqdm(total=len(mine), unit="img", desc="predict", disable=not progress) as bar:
        for file, indices in by_file.items():
            planes = {plane.label: plane.pixels for plane in read_planes(file, choice)}
            for k in indices:
                label = images[k][1]
                yield _predict_one(out, file, label, planes.pop(label), k + 1, predictor, norm, writers, categories,
                                   tile_progress(bar))
                done_image(bar)


def tile_progress(bar: Any) -> Callable[[int, int], None]:
    """A ``Predictor.predict`` progress callback that shows ``tile k/n`` after the tqdm ``bar`` of images, redrawn
    after every tile, for an image of several tiles (a large image can take minutes with its bar at 0)."""
    def show(done: int, total: int) -> None:
        if total > 1:
            bar.set_postfix_str(f"tile {done}/{total}")
    return show


def done_image(bar: Any) -> None:
    """Count one more image on the tqdm ``bar`` and drop its tile count (:func:`tile_progress`)."""
    bar.set_postfix_str("", refresh=False)
    bar.update()


def _predict_one(out: Path, file: Path, label: str, pixels: np.ndarray, image_id: int, predictor: Predictor,
                 norm: Normalisation, writers: dict[str, ModuleType], categories: list[dict[str, Any]],
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Predict one plane (``progress``: called after each tile), write its per-image files (named
    ``_stem(file, label)``); returns its record."""
    stem = _stem(file, label)
    h, w = pixels.shape[:2]
    try:
        instances = predictor.predict(pixels, progress)
    except ValueError as exc:
        raise InputError(f"{file}{' ' + label if label else ''}: {exc}") from exc
    plane = label_plane(label)  # the plane's indices: on it in the ImageJ and QuPath outputs, keys in images.json
    result = ImageResult(instances, categories, h, w, image_id=image_id, file_name=str(file), file=file, plane=label,
                         z=plane.z, t=plane.t, pixels=pixels, normalisation=norm)
    parts = {}
    for name, module in writers.items():
        module.write(result, out, stem)
        if hasattr(module, "collect"):
            parts[name] = module.collect(result)
    return {"id": image_id, "parts": parts, "instances": len(instances)}
