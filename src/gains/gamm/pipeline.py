"""GA maps for a whole COCO dataset: validated, parallel, resumable, stored compactly.

``run_gamm`` reads the annotations, checks every image and annotation, computes the maps image by
image (``workers`` processes), writes them to ``<out>.partial`` and renames it to ``out`` when all is
done. An interrupted run resumes from ``<out>.partial`` (finished images are not recomputed); a run
that fails on bad input removes what it wrote, so no partial store or export is ever left behind. Only
folders of ours are written, emptied or replaced, and a second run on the same store fails while the first holds
its lock (``gains.outputs``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gains import __version__, outputs
from gains.atomic import atomic_write
from gains.core.coco import CocoAnnotations, CocoImage, load_coco
from gains.errors import InputError
from gains.gamm.maps import image_maps
from gains.gamm.params import GammParams
from gains.gamm.prepare import prepare_image
from gains.gamm.store import FORMAT, PRECISIONS, StoreKey, encode_image_maps

log = logging.getLogger("gains.gamm")

SANITISED_NONE, SANITISED_NAN, SANITISED_ZERO = 0, 1, 2


@dataclass
class GammRun:
    """What a run did. ``store`` is None when only ``export_npy`` was asked for."""

    store: Path | None
    params: GammParams
    n_images: int = 0
    n_maps: int = 0
    n_computed_images: int = 0
    n_nan: int = 0
    n_zero: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    up_to_date: bool = False


@dataclass(frozen=True)
class _Job:
    coco: CocoAnnotations
    image_dir: Path
    params: GammParams
    raw: bool
    precision: str
    maps_dir: Path
    export_dir: Path | None
    skip_invalid: bool


_JOB: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _JOB
    _JOB = job


def _process_image(image: CocoImage) -> list[str]:
    """Compute, sanitise and write one image's maps; returns the problems skipped."""
    job = _JOB
    assert job is not None
    height, width, instances, skipped = prepare_image(job.coco, image, job.image_dir, job.skip_invalid)
    try:
        maps = image_maps(instances, height, width, job.params) if instances else []
    except ValueError as exc:
        raise InputError(f"{job.coco.path}: image {image.id}: {exc}") from exc
    codes = np.zeros(len(maps), dtype=np.int8)
    if not job.raw:
        keep_zero = job.params.zero_maps == "keep"
        for j, m in enumerate(maps):
            zero = m.is_zero and not keep_zero
            codes[j] = SANITISED_NAN if m.is_nan else SANITISED_ZERO if zero else SANITISED_NONE
            maps[j] = m.sanitised(keep_zero)
    ann_ids = [inst.ann_id for inst in instances]
    if job.export_dir is not None:
        for aid, m in zip(ann_ids, maps, strict=True):
            dense = m.to_dense(np.float64)
            atomic_write(job.export_dir / f"{aid}.npy", lambda fh, a=dense: np.save(fh, a))
    arrays = encode_image_maps(ann_ids, maps, job.precision)
    arrays["sanitised"] = codes
    arrays["shape"] = np.asarray([height, width], dtype=np.int64)
    atomic_write(job.maps_dir / f"{image.id}.npz", lambda fh: np.savez_compressed(fh, **arrays))
    return skipped


def _manifest(key: StoreKey, coco: CocoAnnotations, complete: bool, extra: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "complete": complete, "annotations_file": str(coco.path),
            "params": key.params, "annotations_sha256": key.annotations_sha256, "raw": key.raw,
            "precision": key.precision, "version": key.version, **extra}


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=1).encode()))


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _build_index(work: Path, coco: CocoAnnotations, run: GammRun) -> dict[str, np.ndarray]:
    """Index of every map written under ``work/maps``; also counts the sanitised maps into ``run``."""
    ann_ids, image_ids, heights, widths = [], [], [], []
    for image in coco.images:
        file = work / "maps" / f"{image.id}.npz"
        if not file.exists():  # an image skipped as invalid
            continue
        with np.load(file) as z:
            n = z["ann_ids"].size
            ann_ids.append(z["ann_ids"])
            image_ids.append(np.full(n, image.id, dtype=np.int64))
            heights.append(np.full(n, z["shape"][0]))
            widths.append(np.full(n, z["shape"][1]))
            run.n_nan += int((z["sanitised"] == SANITISED_NAN).sum())
            run.n_zero += int((z["sanitised"] == SANITISED_ZERO).sum())
    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    index = {"ann_ids": cat(ann_ids), "image_ids": cat(image_ids), "heights": cat(heights), "widths": cat(widths)}
    run.n_maps = int(index["ann_ids"].size)
    return index


def _check_targets(out: Path | None, export_npy: str | Path | None, inputs: list[str | Path]) -> None:
    """Refuse outputs that collide with the inputs, or that are folders gains did not make (``gains.outputs``)."""
    if out is not None:
        outputs.check_apart(out, inputs, "--out")
        outputs.check_writable(out, "store")
    if export_npy is not None:
        outputs.check_apart(export_npy, inputs, "--export-npy")
        outputs.check_writable(Path(export_npy), "npy")


def _prepare_work(work: Path, key: StoreKey, coco: CocoAnnotations, resume: bool) -> set[str]:
    """Set up the claimed staging folder ``work``: a partial store made with other settings is emptied; returns
    the ids (as text) of the images whose maps an interrupted run already wrote. ``resume`` False (an export
    run): every image is computed again, into ``work/export`` too."""
    resumable = key.mismatch(_read_manifest(work) or {}) is None
    if outputs.contents(work) and not resumable:
        log.info("emptying %s: an unfinished store made with other settings", work)
        outputs.clear(work)
    done = {p.stem for p in (work / "maps").glob("*.npz")} if resumable and resume else set()
    if done:
        log.info("resuming %s: %d of %d images already done", work, len(done), len(coco.images))
    (work / "maps").mkdir(parents=True, exist_ok=True)
    if not resume:
        (work / "export").mkdir(parents=True, exist_ok=True)
    _write_json(work / "manifest.json", _manifest(key, coco, False, {}))
    return done


def _move_export(export_tmp: Path, dest: Path) -> None:
    """Move the finished ``.npy`` maps into ``dest`` (made ours when new; checked up front)."""
    outputs.mark(dest, "npy")
    for f in export_tmp.glob("*.npy"):
        f.replace(dest / f.name)
    shutil.rmtree(export_tmp)


def _publish(work: Path, out: Path, index: dict[str, np.ndarray], key: StoreKey, coco: CocoAnnotations,
             run: GammRun) -> None:
    """Write the index and the complete manifest, then rename the finished folder into place."""
    atomic_write(work / "index.npz", lambda fh: np.savez(fh, **index))
    stats = {"n_images": run.n_images, "n_maps": run.n_maps, "sanitised_nan_maps": run.n_nan,
             "sanitised_zero_maps": run.n_zero, "skipped": run.skipped}
    _write_json(work / "manifest.json", _manifest(key, coco, True, stats))
    outputs.remove_orphans(work)
    outputs.remove_ours(out, "store")
    work.rename(out)


def _run_jobs(job: _Job, images: list[CocoImage], workers: int, progress: bool) -> list[str]:
    from tqdm import tqdm

    skipped: list[str] = []
    bar = tqdm(total=len(images), unit="img", desc="GA maps", disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1 or len(images) <= 1:
            _init_worker(job)
            for image in images:
                skipped += _process_image(image)
                bar.update(1)
            return skipped
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(job,)) as pool:
            pending: set[Future[list[str]]] = {pool.submit(_process_image, im) for im in images}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    if fut.exception() is not None:
                        for p in pending:
                            p.cancel()
                        raise fut.exception()  # type: ignore[misc]
                    skipped += fut.result()
                    bar.update(1)
        return skipped
    finally:
        bar.close()


def run_gamm(
    annotations: str | Path,
    image_dir: str | Path,
    params: GammParams,
    out: str | Path | None = None,
    export_npy: str | Path | None = None,
    raw: bool = False,
    precision: str = "float16",
    workers: int = 1,
    skip_invalid: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> GammRun:
    """Compute (or reuse) the GA maps of every annotation of a COCO dataset.

    Args:
        annotations: COCO instances JSON (polygons, RLE or uncompressed RLE).
        image_dir: folder the JSON's ``file_name`` entries are relative to.
        params: variant and hyper-parameters; ``target_category`` must be a category of the JSON, or
            None for the smallest category id (any value with ``every_category``).
        out: store folder; None writes no store (then ``export_npy`` must be given).
        export_npy: also write the reference layout ``<dir>/<annotation_id>.npy`` (float64, H x W).
        raw: keep reference values bit for bit (NaN and all-zero maps included); otherwise NaN maps, and
            all-zero maps unless ``params.zero_maps`` is ``keep``, become all-ones and the count is logged.
        precision: ``float16`` or ``float32`` for stored crops.
        workers: processes working on images in parallel.
        skip_invalid: leave out bad annotations/images (counted and logged) instead of failing.
        overwrite: replace a store made with other parameters or annotations instead of refusing.
        progress: show a progress bar.

    Raises:
        InputError: bad input (nothing is left written), a stale store at ``out`` without ``overwrite``, an
            output that collides with an input or is a folder gains did not make, or a store another gains
            process is writing.
    """
    if out is None and export_npy is None:
        raise InputError("nothing to write: give a store folder (--out) or --export-npy")
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; expected one of {sorted(PRECISIONS)}")
    started = time.perf_counter()
    coco = load_coco(annotations)
    if not coco.images:
        raise InputError(f"{coco.path}: no images, nothing to compute")
    if params.target_category is None:
        params = replace(params, target_category=min(coco.category_ids, default=1))
        log.info("target category: %d (the smallest category id of %s)", params.target_category, coco.path)
    if params.target_category not in coco.category_ids and not params.every_category:
        raise InputError(f"{coco.path}: target category {params.target_category} is not among the categories "
                         f"{sorted(coco.category_ids)}")
    run = GammRun(store=Path(out) if out is not None else None, params=params, n_images=len(coco.images))
    key = StoreKey(params.to_dict(), coco.sha256, raw, precision, __version__)
    out_path = Path(out) if out is not None else None
    _check_targets(out_path, export_npy, [coco.path, image_dir])
    if out_path is not None and export_npy is None and (out_path / "manifest.json").exists():
        manifest = _read_manifest(out_path) or {}
        why = key.mismatch(manifest) if manifest.get("complete") else "unfinished"
        if why is None:
            run.up_to_date, run.n_maps = True, int(manifest.get("n_maps", 0))
            run.seconds = time.perf_counter() - started
            return run
        if not overwrite:
            raise InputError(f"{out_path}: holds GA maps made otherwise ({why}); pass --overwrite or choose "
                             "another folder")
    work = out_path.with_name(out_path.name + ".partial") if out_path is not None else Path(
        str(Path(export_npy)) + ".gains-partial")
    held = outputs.claim(work, "store")  # ours and locked: a second writer of this store fails here
    try:
        export_tmp = work / "export" if export_npy is not None else None
        done = _prepare_work(work, key, coco, resume=export_tmp is None)
        todo = [im for im in coco.images if str(im.id) not in done]
        job = _Job(coco, Path(image_dir), params, raw, precision, work / "maps", export_tmp, skip_invalid)
        run.skipped = _run_jobs(job, todo, workers, progress)
        run.n_computed_images = len(todo)
        if export_tmp is not None:
            _move_export(export_tmp, Path(export_npy))  # type: ignore[arg-type]
        index = _build_index(work, coco, run)
        if out_path is not None:
            _publish(work, out_path, index, key, coco, run)
        else:
            shutil.rmtree(work)
    except InputError:
        shutil.rmtree(work, ignore_errors=True)  # bad input: nothing is left written (an interruption is resumed)
        raise
    finally:
        held.release()
    run.seconds = time.perf_counter() - started
    return run
