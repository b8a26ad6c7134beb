"""Where ``gains predict --dask`` runs: a ``LocalCluster`` sized for this machine, or any running Dask scheduler.

Each Dask worker is one process that runs one task at a time (``threads_per_worker=1``) and holds one copy of
the model; torch inside it uses ``torch_threads`` cores. On a local cluster the cores are shared out between
the workers; a worker costs about a model's memory plus a tile's, so the default count is capped by the free
memory (``WORKER_GIB`` each). A scheduler address (``tcp://HOST:8786``) uses whatever workers joined it, e.g.
started on SLURM or LSF with dask-jobqueue (README, "Whole slides and large screens").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from gains.engine.threads import usable_cores
from gains.errors import InputError

log = logging.getLogger("gains.distributed")

WORKER_GIB = 2.0  # memory a local worker is planned with: a model, its activations on a tile, a tile's results
INSTALL = "pip install 'gains-seg[dask]'"


@dataclass(frozen=True)
class Plan:
    """A local cluster's shape: ``workers`` processes, each running torch on ``torch_threads`` cores."""

    workers: int
    torch_threads: int


def _available_gib() -> float:
    """Memory available to new processes (``MemAvailable``), in GiB; infinite where /proc/meminfo is missing."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return float("inf")


def local_plan(workers: int | None = None) -> Plan:
    """The local cluster for this machine: ``workers`` (default: one per usable core, at most one per
    ``WORKER_GIB`` of available memory, at least one), sharing the usable cores between them."""
    cores = len(usable_cores())
    if workers is None:
        workers = max(1, min(cores, int(_available_gib() // WORKER_GIB)))
    if workers < 1:
        raise InputError(f"--dask-workers {workers}: give at least 1")
    return Plan(workers, max(1, cores // workers))


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise InputError(f"gains predict --dask needs Dask's distributed scheduler; {INSTALL}") from exc
    return distributed


@contextmanager
def connect(spec: str, workers: int | None = None) -> Iterator[tuple[Any, int | None]]:
    """A ``distributed.Client`` and the torch threads its tasks should use (None: leave torch's default): for
    ``spec`` ``local`` a ``LocalCluster`` of ``local_plan(workers)`` made for this run and closed after it, else
    the scheduler at address ``spec``.

    Raises:
        InputError: Dask missing, or no scheduler answering at ``spec``.
    """
    distributed = _import_distributed()
    logging.getLogger("distributed").setLevel(logging.WARNING)  # the scheduler's own news, in this process
    if spec == "local":
        plan = local_plan(workers)
        log.info("Dask: a local cluster of %d worker process(es), torch on %d core(s) each", plan.workers,
                 plan.torch_threads)
        with distributed.LocalCluster(n_workers=plan.workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
                distributed.Client(cluster) as client:
            yield client, plan.torch_threads
        return
    if workers is not None:
        raise InputError("--dask-workers sizes a local cluster; a scheduler's workers are started with it")
    try:
        client = distributed.Client(spec, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"--dask {spec}: no Dask scheduler answers there ({exc})") from exc
    with client:
        n = len(client.scheduler_info().get("workers", {}))
        log.info("Dask: scheduler %s with %d worker(s)", spec, n)
        yield client, None


def worker_count(client: Any) -> int:
    """How many workers the client's scheduler has now (at least 1: tasks wait for one to join)."""
    return max(1, len(client.scheduler_info().get("workers", {})))


