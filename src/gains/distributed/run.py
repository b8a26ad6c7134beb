"""``gains predict --dask``: the images of a run, and the tiles of its large images, as Dask tasks.

- An image that fits one tile is one task: a worker reads it, predicts it and writes its files (the output
  folder must be shared with the workers, as under torchrun).
- An image of several tiles (``Predictor.tiles``) is one task per tile. The client fits the image's
  normalisation once (``Normalisation.fit``, a strided sample of a lazy plane), hands each task its tile (cut
  from an array in memory, or the lazy plane for the worker to read from: ``gains.core.lazy``), and merges
  the tiles' instances with the same rule as one process (``Predictor.combine``: each instance kept once,
  from the tile whose core holds it), then writes the image's files. The result is the single-process tiled
  result; the client holds the image's results, never a full-size array per instance.

At most ``IN_FLIGHT`` tasks per worker are queued at once, so the tiles cut from arrays in memory stay few.
The run is resumable like any other (``--resume``: ``gains.inference.records``) and ends with the same
whole-run files (``results.json``, ``images.json``, ``index.json``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gains import outputs
from gains.core.images import image_size, read_planes
from gains.core.masks import Instance
from gains.core.planes import PlaneChoice
from gains.distributed.cluster import connect, worker_count
from gains.distributed.tasks import image_task, tile_task
from gains.errors import InputError
from gains.inference.predict_run import Job, finish, load_predictor, plan, write_image
from gains.inference.predictor import PredictOptions, Predictor, TilePlan
from gains.sysinfo import peak_rss_mib

log = logging.getLogger("gains.distributed")

IN_FLIGHT = 2  # tasks queued per worker


class _Tiled:
    """One image predicted in tiles: its pixels (kept for the writers), its plan and the tiles' instances so far."""

    def __init__(self, pixels: Any, plan: TilePlan) -> None:
        self.pixels, self.plan = pixels, plan
        self.found: dict[int, list[Instance]] = {}

    @property
    def complete(self) -> bool:
        return len(self.found) == len(self.plan.boxes)


def predict_files_dask(checkpoint: str | Path, inputs: list[str | Path], out: str | Path, formats: list[str],
                       options: PredictOptions | None = None, progress: bool = True,
                       choice: PlaneChoice | None = None, resume: bool = False, scheduler: str = "local",
                       workers: int | None = None) -> dict[str, Any]:
    """``gains.inference.predict_run.predict_files`` with the work done by Dask workers (module docstring):
    ``scheduler`` ``local`` (a ``LocalCluster`` of ``workers`` processes, default sized for the machine) or a
    scheduler's address. Returns the same summary, with ``peak_mib`` the largest of the client's and the
    workers' peak memory (``client_peak_mib``, ``worker_peak_mib`` apart).

    Raises:
        InputError: as ``predict_files``; Dask missing; no scheduler at the address. An output folder this call
            created is removed again on any failure.
    """
    options = options or PredictOptions()
    job = plan(checkpoint, inputs, out, formats, options, choice or PlaneChoice(), resume)
    predictor = load_predictor(job, checkpoint, options)
    held = outputs.claim(job.out, "predictions")  # refused before any cluster starts
    try:
        with connect(scheduler, workers) as (client, threads):
            records = _run(client, threads, job, checkpoint, options, predictor, progress)
            finish(job, records, predictor.categories, "dask")
            worker_peak = max(client.run(peak_rss_mib).values(), default=0.0)
    except BaseException:
        if held.created:  # a failed run leaves nothing behind (files of an existing folder are kept)
            shutil.rmtree(job.out, ignore_errors=True)
        raise
    finally:
        held.release()
    client_peak = peak_rss_mib()
    return {"images": len(job.images), "instances": sum(r["instances"] for r in records),
            "resumed": sum(bool(r.get("resumed")) for r in records), "peak_mib": max(client_peak, worker_peak),
            "client_peak_mib": client_peak, "worker_peak_mib": worker_peak, "out": str(job.out),
            "scale": predictor.scale, "scale_note": predictor.scale_note, "main": True}


def _tasks(job: Job, predictor: Predictor, pending: list[int], tiled: dict[int, _Tiled]
           ) -> Iterator[tuple[Any, ...]]:
    """(function, *arguments after the run's own) of every task, image by image; an image of several tiles is
    read (lazily where large) and registered in ``tiled`` when its first tile is asked for."""
    for k in pending:
        file, label = job.images[k]
        pixels = None
        if not _one_tile(job, k, predictor):
            pixels = next(p.pixels for p in read_planes(file, job.plane_choice(k), lazy=None) if p.label == label)
        if pixels is None:
            yield image_task, k
            continue
        try:
            plan = predictor.plan(pixels)
        except ValueError as exc:
            raise InputError(f"{file}{' ' + label if label else ''}: {exc}") from exc
        tiled[k] = _Tiled(pixels, plan)
        for t, (y0, x0, y1, x1) in enumerate(plan.boxes):
            region = plan.pixels[y0:y1, x0:x1] if isinstance(plan.pixels, np.ndarray) else plan.pixels
            yield tile_task, k, t, region, (y0, x0, y1, x1), plan.scaling, plan.whole, plan.level_scale


def _one_tile(job: Job, k: int, predictor: Predictor) -> bool:
    """Whether image k is predicted whole (one tile), from its header alone."""
    height, width = image_size(job.images[k][0], job.plane_choice(k), lazy=None)
    return len(predictor.tiles(height, width)) == 1


def _run(client: Any, threads: int | None, job: Job, checkpoint: str | Path, options: PredictOptions,
         predictor: Predictor, progress: bool) -> list[dict[str, Any]]:
    """Submit the job's tasks (at most ``IN_FLIGHT`` per worker at a time), merge tiles and write tiled images
    as they complete; returns every image's record in id order (earlier runs' where resuming)."""
    from distributed import as_completed
    from tqdm import tqdm

    records: dict[int, dict[str, Any]] = {}
    for k in range(len(job.images)):
        record = job.done(k)
        if record is not None:
            records[k] = {**record, "resumed": True}
    if records:
        log.info("%d image(s) done by an earlier run, skipped (--resume)", len(records))
    pending = [k for k in range(len(job.images)) if k not in records]
    tiled: dict[int, _Tiled] = {}
    source = _tasks(job, predictor, pending, tiled)
    running = as_completed()
    meta: dict[Any, tuple[int, int | None]] = {}

    def submit() -> bool:
        item = next(source, None)
        if item is None:
            return False
        fn, k, *rest = item
        if fn is image_task:
            future = client.submit(image_task, checkpoint, options, threads, job, k, pure=False)
            meta[future] = (k, None)
        else:
            t, *args = rest
            future = client.submit(tile_task, checkpoint, options, threads, *args, pure=False)
            meta[future] = (k, t)
        running.add(future)
        return True

    with tqdm(total=len(job.images), initial=len(records), unit="img", desc="predict", disable=not progress) as bar:
        for _ in range(IN_FLIGHT * worker_count(client)):
            if not submit():
                break
        try:
            for future in running:
                k, t = meta.pop(future)
                result = future.result()  # a task's exception is raised here, with its own message
                if t is None:
                    records[k] = result
                    bar.update()
                else:
                    image = tiled[k]
                    image.found[t] = result
                    boxes = image.plan.boxes
                    bar.set_postfix_str(f"tile {len(image.found)}/{len(boxes)}")
                    if image.complete:
                        per_tile = [(boxes[i], image.found[i]) for i in range(len(boxes))]
                        found = image.plan.predictor.combine(per_tile, image.plan.factor, *image.pixels.shape[:2])
                        records[k] = write_image(job, k, image.pixels, found, predictor)
                        del tiled[k]
                        bar.set_postfix_str("", refresh=False)
                        bar.update()
                submit()
        except BaseException:
            for future in meta:
                future.cancel()
            raise
    return [records[k] for k in range(len(job.images))]
