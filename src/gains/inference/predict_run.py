"""``gains predict``: segment image files or folders and write the asked-for outputs (one process or torchrun)."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from gains import formats as registry
from gains import outputs
from gains.core import parallel as dist
from gains.core.images import check_input, check_inputs, is_image_path, read_planes
from gains.core.masks import Instance
from gains.core.planes import PlaneChoice, label_plane
from gains.errors import InputError
from gains.formats.result import ImageResult
from gains.inference.loading import checkpoint_stamp
from gains.inference.predictor import PredictOptions, Predictor
from gains.inference.records import Records, settings_key, write_index
from gains.sysinfo import peak_rss_mib

log = logging.getLogger("gains.predict")


def input_files(inputs: list[str | Path]) -> list[Path]:
    """Images named directly or found (not recursively) in named folders, in sorted order: files, and Zarr
    folders (OME-Zarr or a plain array), which are images themselves, never searched."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir() and not is_image_path(item):
            files += sorted(p for p in item.iterdir() if is_image_path(p))
        elif item.exists():
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


@dataclass
class Job:
    """One ``gains predict`` run, planned before the model loads.

    Attributes:
        out: the output folder.
        images: (file, plane label) of every image (plane) of the run; image k has id k + 1.
        formats: the formats' names (``gains.formats``), in the order asked: ``writers`` are their modules.
        choice: the planes and channels read (``gains.core.planes``).
        records: the folder's records (``gains.inference.records``); resume: reuse those that match.
    """

    out: Path
    images: list[tuple[Path, str]]
    formats: tuple[str, ...]
    choice: PlaneChoice
    records: Records
    resume: bool = False

    @property
    def writers(self) -> dict[str, ModuleType]:
        """Name -> module of the run's formats (names travel to Dask workers; modules are looked up there)."""
        return registry.select(list(self.formats), "predict")

    def stem(self, k: int) -> str:
        """Output name stem of image k (0-based)."""
        return _stem(*self.images[k])

    def plane_choice(self, k: int) -> PlaneChoice:
        """The run's choice narrowed to image k's own plane (its Z and T indices), to read that plane alone."""
        plane = label_plane(self.images[k][1])
        return replace(self.choice, z=self.choice.z if plane.z is None else plane.z,
                       t=self.choice.t if plane.t is None else plane.t)

    def done(self, k: int) -> dict[str, Any] | None:
        """Image k's record from an earlier run when resuming and it still holds, else None."""
        if not self.resume:
            return None
        file, label = self.images[k]
        return self.records.done(self.stem(k), file, label, k + 1)


def plan(checkpoint: str | Path, inputs: list[str | Path], out: str | Path, formats: list[str],
         options: PredictOptions, choice: PlaneChoice, resume: bool = False) -> Job:
    """Check the inputs (headers only), the formats and the output folder's place, before any model is loaded.

    Raises:
        InputError: an unknown format, a missing or unusable input, two images with the same output name, or an
            output folder inside the inputs.
    """
    for module in registry.select(formats, "predict").values():
        if hasattr(module, "require"):  # a format's optional library, refused before anything is read
            module.require()
    files = input_files(inputs)
    outputs.check_apart(out, inputs)
    images = check_inputs(files, choice, lazy=None)
    stems = [_stem(f, label) for f, label in images]
    clash = next((stem for stem, n in Counter(stems).items() if n > 1), None)  # every header read before the model
    if clash is not None:
        raise InputError(f"{clash}: two inputs (or planes) give the same output name; rename one")
    key = settings_key(checkpoint, checkpoint_stamp(checkpoint), options, choice, formats)
    return Job(Path(out), images, tuple(dict.fromkeys(formats)), choice, Records(Path(out), key), resume)


def load_predictor(job: Job, checkpoint: str | Path, options: PredictOptions) -> Predictor:
    """The run's predictor, once the inputs are known to fit its scale (the limit on decoded pixels holds after
    an upscale too).

    Raises:
        InputError: a checkpoint ``Predictor.from_checkpoint`` refuses, or an input too large at the model's scale.
    """
    predictor = Predictor.from_checkpoint(checkpoint, options)
    scaled = replace(job.choice, scale=predictor.scale or 1.0)
    for file in dict.fromkeys(f for f, _ in job.images):
        check_input(file, scaled, lazy=None)
    return predictor


def predict_files(checkpoint: str | Path, inputs: list[str | Path], out: str | Path, formats: list[str],
                  options: PredictOptions | None = None, progress: bool = True, choice: PlaneChoice | None = None,
                  resume: bool = False) -> dict[str, Any]:
    """Predict every input (the planes and channels ``choice`` picks, see ``gains.core.images``); returns a summary
    (images = planes of the run, instances, ``resumed``: images taken from an earlier run's records, peak memory
    in MiB of the largest process, the scale used, and ``main``: whether this process is the one that reports).

    ``options``: how the checkpoint predicts (``Predictor.from_checkpoint``; default ``PredictOptions()``).
    ``resume``: skip the images an earlier run into ``out`` finished with the same settings
    (``gains.inference.records``). Under ``torchrun`` (WORLD_SIZE > 1) each process predicts its ``share`` of the
    images and writes their files; rank 0 gathers the records and writes the whole-run files (``results.json``,
    ``images.json``, ``index.json``) exactly as one process would. Every process must see the same output folder
    (a shared file system when the processes run on several machines).

    Raises:
        InputError: bad inputs or checkpoint, on every process alike; an output folder this call created is
            removed again.
    """
    options = options or PredictOptions()
    job = plan(checkpoint, inputs, out, formats, options, choice or PlaneChoice(), resume)
    torch_device = dist.resolve_device(options.device)
    joined = dist.world_size() == 1 and dist.init_distributed(torch_device)  # leave a caller's group alone
    main = dist.is_main()
    try:
        failure = None
        try:
            predictor = load_predictor(job, checkpoint, options)
        except Exception as exc:  # e.g. out of memory on one GPU: every process stops before the folder is made
            failure = (-1, exc)
        _agree(failure)
        world = dist.world_size()
        if world > 1 and main:
            log.info("predicting %d images on %d processes (image k on process k mod %d)", len(job.images), world,
                     world)
        held = _open_out(job.out)
        created = held is not None and held.created
        try:
            total, skipped, peak = _predict_into(job, predictor, progress and main,
                                                 remove=job.out if created else None)
        except BaseException:
            if created:  # a failed run leaves nothing behind (files of an existing folder are kept)
                shutil.rmtree(job.out, ignore_errors=True)
            raise
        finally:
            if held is not None:
                held.release()
    finally:
        if joined:
            dist.cleanup()
    return {"images": len(job.images), "instances": total, "resumed": skipped, "peak_mib": peak,
            "out": str(job.out), "scale": predictor.scale, "scale_note": predictor.scale_note, "main": main}


def _stem(file: Path, label: str) -> str:
    """Output name stem of one image: ``<name>`` or ``<name>_<plane label>`` (e.g. ``cells_z3_t0``), where the
    name is the file's stem, a Zarr folder's name without ``.zarr`` / ``.ome.zarr``."""
    name = file.name
    base = next((name[: -len(s)] for s in (".ome.zarr", ".zarr") if name.lower().endswith(s)), file.stem)
    return f"{base}_{label}" if label else base


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


def _predict_into(job: Job, predictor: Predictor, progress: bool, remove: Path | None = None
                  ) -> tuple[int, int, float]:
    """Predict this process's share of the job's images and write their files; rank 0 writes the whole-run files
    (``finish``). Returns (instances of the whole run, images resumed from records, largest peak memory of a
    process in MiB). On a failure anywhere, ``remove`` (the folder this run created, if any) is removed before
    any process raises."""
    mine = share(len(job.images), dist.rank(), dist.world_size())
    records: list[dict[str, Any]] = []
    failure = None
    try:
        for record in _predict_share(job, mine, predictor, progress):
            records.append(record)
    except Exception as exc:  # every process learns of it before anyone cleans up
        failure = (mine[len(records)] if len(records) < len(mine) else len(job.images), exc)
    parts = _agree(failure, (records, peak_rss_mib()), remove)
    merged = sorted((r for recs, _ in parts for r in recs), key=lambda r: r["id"])
    failure = None
    if dist.is_main():
        try:
            finish(job, merged, predictor.categories, "torchrun" if dist.world_size() > 1 else "local")
        except Exception as exc:
            failure = (len(job.images), exc)
    _agree(failure, remove=remove)
    return (sum(r["instances"] for r in merged), sum(bool(r.get("resumed")) for r in merged),
            max(peak for _, peak in parts))


def finish(job: Job, records: list[dict[str, Any]], categories: list[dict[str, Any]], engine: str) -> None:
    """Write the whole-run files of every image's ``records`` (in id order): each whole-run format's (``finish``)
    and ``index.json`` (``gains.inference.records``)."""
    for name, module in job.writers.items():
        if hasattr(module, "finish"):
            module.finish(job.out, [r["parts"][name] for r in records], categories)
    write_index(job.out, records, engine, sum(bool(r.get("resumed")) for r in records))


def _predict_share(job: Job, mine: list[int], predictor: Predictor, progress: bool) -> Iterator[dict[str, Any]]:
    """Predict images ``mine`` (ascending indices into ``job.images``), writing their per-image files; yields
    each image's record (``predict_image``), an earlier run's where the job resumes and it holds. A file is read
    once, for the planes of it in ``mine``; a large file lazily (``gains.core.lazy``), tile by tile.
    ``progress``: a bar of images, with the tiles of the current image after it (``tile_progress``)."""
    from tqdm import tqdm

    by_file: dict[Path, list[int]] = {}
    with tqdm(total=len(mine), unit="img", desc="predict", disable=not progress) as bar:
        for k in mine:
            record = job.done(k)
            if record is not None:
                bar.update()
                yield {**record, "resumed": True}
            else:
                by_file.setdefault(job.images[k][0], []).append(k)
        if bar.n:
            log.info("%d image(s) done by an earlier run, skipped (--resume)", bar.n)
        for file, indices in by_file.items():
            planes = {plane.label: plane.pixels for plane in read_planes(file, job.choice, lazy=None)}
            for k in indices:
                yield predict_image(job, k, planes.pop(job.images[k][1]), predictor, tile_progress(bar))
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


def predict_image(job: Job, k: int, pixels: np.ndarray | Any, predictor: Predictor,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Predict image k of the job (its ``pixels``: an array or a lazy plane; ``progress`` called after each
    tile), write its files and its record; returns the record: {"id", "file_name", "plane", "instances",
    "files": names written, "parts": its part of each whole-run format (``collect``)}."""
    file, label = job.images[k]
    try:
        instances = predictor.predict(pixels, progress)
    except ValueError as exc:
        raise InputError(f"{file}{' ' + label if label else ''}: {exc}") from exc
    return write_image(job, k, pixels, instances, predictor)


def write_image(job: Job, k: int, pixels: np.ndarray | Any, instances: list[Instance], predictor: Predictor
                ) -> dict[str, Any]:
    """Write image k's files from its ``instances`` and store its record (see ``predict_image``)."""
    file, label = job.images[k]
    stem, (h, w) = job.stem(k), pixels.shape[:2]
    plane = label_plane(label)  # the plane's indices: on it in the ImageJ and QuPath outputs, keys in images.json
    result = ImageResult(instances, predictor.categories, h, w, image_id=k + 1, file_name=str(file), file=file,
                         plane=label, z=plane.z, t=plane.t, pixels=pixels, normalisation=predictor.normalisation)
    parts, written = {}, []
    for name, module in job.writers.items():
        written += [p.name for p in module.write(result, job.out, stem)]
        if hasattr(module, "collect"):
            parts[name] = module.collect(result)
    record = {"id": k + 1, "file_name": str(file), "plane": label, "instances": len(instances), "files": written,
              "parts": parts}
    job.records.save(stem, file, label, record)
    return record
