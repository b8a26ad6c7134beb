"""JSON files a user gives us, read so that every failure is one ``InputError`` line naming the file.

``json`` alone raises ``JSONDecodeError`` for bad syntax, ``UnicodeDecodeError`` for bytes that are not
UTF-8, ``RecursionError`` for arrays or objects nested thousands deep and a plain ``ValueError`` for an
integer of more than 4,300 digits; here each becomes ``FILE: not valid JSON (why)`` (``FILE: line N: ...``
for JSON Lines).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gains.errors import InputError


def parse_json(raw: bytes | str, where: str | Path) -> Any:
    """The parsed document of ``raw`` (the bytes or text of ``where``).

    Raises:
        InputError: ``where: not valid JSON (why)``.
    """
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise InputError(f"{where}: not valid JSON (nested too deeply)") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer too long to convert
        raise InputError(f"{where}: not valid JSON ({exc})") from exc


def read_json(path: str | Path) -> Any:
    """The parsed document of a JSON file.

    Raises:
        InputError: the file cannot be read, or is not valid JSON (one line naming it).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return parse_json(raw, path)


def read_json_lines(path: str | Path) -> list[dict[str, Any]]:
    """The objects of a JSON Lines file (one JSON object per line; blank lines skipped).

    Raises:
        InputError: the file cannot be read, or a line is not a JSON object (``FILE: line N: ...``).
    """
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        record = parse_json(line, f"{path}: line {number}")
        if not isinstance(record, dict):
            raise InputError(f"{path}: line {number}: expected a JSON object, got {type(record).__name__}")
        out.append(record)
    return out
