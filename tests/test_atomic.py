"""Atomic writes and links: readers never see partial files; a link keeps the state it was made from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gains.atomic import atomic_link, atomic_write


def test_link_keeps_old_content_after_source_is_rewritten(tmp_path: Path) -> None:
    src, dst = tmp_path / "last.pt", tmp_path / "best.pt"
    atomic_write(src, lambda fh: fh.write(b"state 1"))
    atomic_write(dst, lambda fh: fh.write(b"older best"))
    atomic_link(src, dst)
    assert dst.read_bytes() == b"state 1" and os.path.samefile(src, dst)
    atomic_write(src, lambda fh: fh.write(b"state 2"))
    assert dst.read_bytes() == b"state 1" and src.read_bytes() == b"state 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_link_falls_back_to_a_copy(tmp_path: Path, monkeypatch) -> None:
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"x" * 100)

    def no_links(*_args):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    atomic_link(src, dst)
    assert dst.read_bytes() == b"x" * 100 and not os.path.samefile(src, dst)


def test_failed_write_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")

    def fail(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f"]
