"""Output folders: which are ours, who writes them, and what a command may remove.

One rule for every command that writes a folder (datasets, exports, GA-map stores and their ``.partial``
staging folders, training runs, predictions, the demo):

* a folder gains makes carries a marker, ``.gains-owner`` (JSON: the kind of folder and the gains version);
* a command writes only into a folder it creates, an empty one, or one of ours of the same kind, and removes or
  replaces only a folder of ours (``--overwrite`` included); anything else is refused in one line;
* ``--out`` must not be, contain or lie inside one of the command's inputs;
* a writer holds ``.gains-lock`` (``fcntl.flock``, released when the process dies), so a second writer of the
  same folder fails in one line instead of mixing its files in;
* temporary files and folders of ours (``.NAME.*.gains-tmp``, see ``gains.atomic``) left by a killed run are removed by
  the next run that claims the folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gains import __version__
from gains.atomic import atomic_write
from gains.errors import InputError

MARKER = ".gains-owner"
LOCK = ".gains-lock"
# our temporary names: today's ``.NAME.XXXX.gains-tmp``, and the older ``.NAME.XXXXXXXX.tmp`` (mkstemp) and
# ``.NAME.PID.link.tmp`` (atomic_link) of earlier versions
_ORPHAN = re.compile(r"^\..+(\.gains-tmp|\.[A-Za-z0-9_]{8}\.tmp|\.\d+\.link\.tmp)$")


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _legacy_run(folder: Path) -> bool:
    """A training run made before runs carried a marker: its config next to its checkpoint or metrics."""
    return (folder / "config.yaml").is_file() and any((folder / f).is_file() for f in ("last.pt", "metrics.jsonl"))


def _legacy_store(folder: Path) -> bool:
    """A GA-map store (or its staging folder) made before stores carried a marker: a gains manifest."""
    manifest = _read_json(folder / "manifest.json")
    return isinstance(manifest, dict) and {"format", "annotations_sha256", "params"} <= manifest.keys()


def _legacy_evaluation(folder: Path) -> bool:
    """A ``gains eval`` folder made before markers: its results and metrics, and nothing but their CSV."""
    names = {p.name for p in folder.iterdir()}
    return {"results.json", "METRICS.json"} <= names <= {"results.json", "METRICS.json", "METRICS_per_image.csv", LOCK}


_LEGACY = {"run": _legacy_run, "store": _legacy_store, "evaluation": _legacy_evaluation}


def contents(folder: Path) -> list[Path]:
    """What ``folder`` holds besides our marker and lock file (empty when it does not exist)."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name not in (MARKER, LOCK)]


def owner(folder: Path) -> str | None:
    """The kind of folder of ours ``folder`` is (``run``, ``store``, ``dataset``...), or None when it is not ours."""
    marker = _read_json(folder / MARKER)
    if isinstance(marker, dict) and isinstance(marker.get("kind"), str):
        return marker["kind"]
    return next((kind for kind, test in _LEGACY.items() if folder.is_dir() and test(folder)), None)


def is_ours(folder: Path, kind: str) -> bool:
    """Whether ``folder`` is a folder of ours of ``kind``."""
    return owner(folder) == kind


def mark(folder: Path, kind: str) -> None:
    """Make ``folder`` (and its parents) if needed and mark it as ours, of ``kind``."""
    folder.mkdir(parents=True, exist_ok=True)
    if owner(folder) != kind or not (folder / MARKER).exists():
        doc = {"kind": kind, "made_by": "gains", "version": __version__}
        atomic_write(folder / MARKER, lambda fh: fh.write(json.dumps(doc).encode()))


def check_writable(folder: Path, kind: str) -> None:
    """Refuse to write into ``folder`` unless it is missing, empty, or ours of ``kind``.

    Raises:
        InputError: ``folder`` is a file, or holds files and is not a folder of ours of this kind.
    """
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    if contents(folder) and not is_ours(folder, kind):
        what = owner(folder)
        made = f"holds a gains {what}, not a {kind}" if what else "was not made by gains"
        raise InputError(f"{folder}: folder is not empty and {made}; gains writes only into its own folders "
                         "(choose a new or empty folder)")


def remove_ours(folder: Path, kind: str) -> None:
    """Remove ``folder`` if it is a folder of ours of ``kind`` (or empty); refuse anything else.

    Raises:
        InputError: ``folder`` holds files and is not ours (see :func:`check_writable`).
    """
    if not folder.exists():
        return
    check_writable(folder, kind)
    shutil.rmtree(folder)


def clear(folder: Path) -> None:
    """Remove everything in a folder of ours but its marker and lock file (its owner must be checked first)."""
    for path in contents(folder):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def remove_orphans(folder: Path) -> int:
    """Remove the temporary files and folders of ours (see ``gains.atomic``) under ``folder``; returns how many.

    Call it only on a folder of ours that this process holds locked: another writer's live temporary files
    would go too.
    """
    removed = 0
    for root, dirs, files in os.walk(folder):
        for name in [d for d in dirs if _ORPHAN.match(d)]:
            shutil.rmtree(Path(root, name), ignore_errors=True)
            dirs.remove(name)
            removed += 1
        for name in files:
            if _ORPHAN.match(name):
                Path(root, name).unlink(missing_ok=True)
                removed += 1
    return removed


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def check_apart(out: str | Path, inputs: Iterable[str | Path | None], flag: str = "--out") -> None:
    """Refuse an output folder that is, contains or lies inside one of ``inputs`` (files or folders).

    Raises:
        InputError: naming ``flag`` and the input it collides with.
    """
    target = _resolved(out)
    for item in inputs:
        if item is None:
            continue
        source = _resolved(item)
        if target == source or target in source.parents or source in target.parents:
            how = "is" if target == source else "contains" if target in source.parents else "lies inside"
            raise InputError(f"{flag} {out}: {how} the input {item}; write the output to a folder apart from "
                             "the inputs")


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; True when taken (or where locks do not exist)."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform: no locking
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class Claim:
    """A folder this process writes: ours, locked against other gains processes, and removable again on
    failure when this claim made it (``fresh``). Use as a context manager, or call ``release``."""

    def __init__(self, folder: Path, fresh: bool, created: bool, fd: int) -> None:
        self.folder, self.fresh, self.created, self._fd = folder, fresh, created, fd

    def discard(self) -> None:
        """Remove what this claim made: the folder it created (or filled from empty); nothing otherwise."""
        if not self.fresh or not self.folder.exists():
            return
        if self.folder.is_dir() and not self.folder.is_symlink():
            clear(self.folder)
            for name in (MARKER, LOCK):
                (self.folder / name).unlink(missing_ok=True)
            if self.created:
                shutil.rmtree(self.folder, ignore_errors=True)

    def release(self) -> None:
        """Give the lock back (the files stay)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and not issubclass(exc_type, KeyboardInterrupt):
                self.discard()
        finally:
            self.release()


def claim(folder: str | Path, kind: str, replace: bool = False) -> Claim:
    """Make or take ``folder`` for writing, as a folder of ours of ``kind``, locked against other gains processes.

    A missing or empty folder is made ours; a folder of ours of ``kind`` is taken as it is (``replace``: emptied
    first); anything else is refused. Temporary files a killed run of ours left behind are removed. The claim is
    ``fresh`` (``discard`` removes what was written) when the folder was missing, empty or emptied.

    Raises:
        InputError: not a folder, not ours (see :func:`check_writable`), or being written by another process.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    created = not folder.exists()
    if not (folder / LOCK).exists():  # a user's folder is refused before anything is made in it
        check_writable(folder, kind)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise InputError(f"{folder}: cannot write there ({exc.strerror or exc})") from exc
    if not _try_lock(fd):
        os.close(fd)
        pid = (folder / LOCK).read_text(errors="replace").strip() or "unknown"
        raise InputError(f"{folder}: is being written by another gains process (pid {pid}); wait for it to "
                         "finish or choose another folder")
    try:  # again under the lock: another writer may have been halfway through its marker before
        check_writable(folder, kind)
    except BaseException:
        os.close(fd)
        raise
    fresh = not contents(folder)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    held = Claim(folder, fresh or replace, created, fd)  # an emptied folder holds only what this run writes
    try:
        if replace and not fresh:
            clear(folder)
        mark(folder, kind)
        remove_orphans(folder)
    except BaseException:
        held.release()
        raise
    return held


@contextmanager
def staged_folder(out: str | Path, overwrite: bool = False, kind: str = "dataset",
                  inputs: Iterable[str | Path | None] = ()) -> Iterator[Path]:
    """Build a folder as ``<out>.partial`` and rename it to ``out`` only when the block succeeds.

    Both folders follow ``gains.outputs``: ``out`` must lie apart from ``inputs``; a non-empty ``out`` is replaced
    only with ``overwrite`` and only when it is a folder of ours of ``kind``; the staging folder is ours and locked
    (a stale one of ours is emptied, anyone else's refused). On any error the staging folder is removed, so no
    partial output is ever left behind.

    Raises:
        InputError: ``out`` collides with an input, is not empty (without ``overwrite``), is not ours, or its
            staging folder is not ours or is being written by another gains process.
    """
    out = Path(out)
    check_apart(out, inputs)
    if contents(out) and not overwrite:
        raise InputError(f"{out}: folder exists and is not empty (pass --overwrite to replace it)")
    check_writable(out, kind)
    tmp = out.with_name(out.name + ".partial")
    held = claim(tmp, kind, replace=True)
    try:
        yield tmp
        remove_ours(out, kind)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        held.release()
