"""Training presets shipped as package data: ``--config NAME`` takes a preset name or a YAML path.

The presets are the ``*.yaml`` files of this package folder (read through ``importlib.resources``, so they are
found in a wheel as in a checkout); the first comment line of each file is its one-line purpose. Names resolve
here and nowhere else.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from gains.errors import InputError

CONFIG_SUFFIXES = (".yaml", ".yml")


def preset_names() -> list[str]:
    """Names of the shipped presets, sorted (``isbi2014_cpu``, ``synthetic_overlap_cpu``, ...)."""
    return sorted(f.name[: -len(".yaml")] for f in files(__package__).iterdir() if f.name.endswith(".yaml"))


def _unknown(name: str, hint: str = "") -> InputError:
    return InputError(f"unknown preset {name!r}; choose from {', '.join(preset_names())}{hint}")


def preset_text(name: str) -> str:
    """The YAML text of preset ``name``.

    Raises:
        InputError: no such preset (the message lists the known names).
    """
    if name not in preset_names():
        raise _unknown(name)
    return files(__package__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def preset_purpose(name: str) -> str:
    """The one-line purpose of a preset: its first comment line, without the ``#``."""
    for line in preset_text(name).splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def _is_path(name_or_path: str | Path) -> bool:
    text = str(name_or_path)
    return (isinstance(name_or_path, Path) or "/" in text or "\\" in text
            or text.lower().endswith(CONFIG_SUFFIXES) or Path(text).is_file())


def resolve_config(name_or_path: str | Path) -> tuple[str, str]:
    """(label, YAML text) of a preset name or a config file path; the label names it in error messages.

    A value is a path when it is a ``Path``, contains a path separator, ends in ``.yaml``/``.yml`` or names an
    existing file; otherwise it is a preset name.

    Raises:
        InputError: an unknown preset name, or a file that is missing or unreadable (one line; a missing
            ``configs/NAME.yaml`` whose NAME is a preset says to pass the name).
    """
    if not _is_path(name_or_path):
        if str(name_or_path) not in preset_names():
            raise _unknown(str(name_or_path), " (or pass the path of a YAML file)")
        return f"preset {name_or_path}", preset_text(str(name_or_path))
    path = Path(name_or_path)
    if not path.is_file():
        stem = path.stem
        hint = f"; the presets ship with gains now: pass --config {stem}" if stem in preset_names() else ""
        raise InputError(f"{path}: config file not found{hint}")
    try:
        return str(path), path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read config ({exc})") from exc
