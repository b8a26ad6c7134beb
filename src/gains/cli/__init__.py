"""The ``gains`` command: one module per subcommand, each ``add(sub)`` (its parser) and ``run(args)`` (parse,
then call one library function; heavy imports happen inside ``run``).

Every expected failure prints one line ``gains CMD: error: MESSAGE`` and exits 2: user mistakes (``InputError``),
numbers out of range (refused where parsed, ``gains.cli.args``), file system refusals and exhausted resources
(``expected_failure``).
"""

from __future__ import annotations

import argparse
import errno
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from gains import __version__
from gains.cli import (
    convert,
    demo,
    eval,
    export,
    export_model,
    gamm,
    models,
    predict,
    presets,
    report,
    score,
    split,
    stats,
    synth,
    train,
)
from gains.cli.args import OneLineParser
from gains.errors import InputError

__all__ = ["COMMANDS", "build_parser", "expected_failure", "main"]

log = logging.getLogger("gains")

# the subcommand modules, in the order ``gains --help`` lists them; module name = command name, "_" for "-"
COMMANDS = (gamm, synth, convert, split, stats, export, train, score, eval, predict, demo, report, presets, models,
            export_model)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = OneLineParser(prog="gains", description="GAInS instance segmentation of touching, crossing "
                                     "and overlapping cells, nuclei and chromosomes.")
    parser.add_argument("--version", action="version", version=f"gains {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add(sub)
    return parser


def _os_error_line(exc: OSError) -> str:
    """``FILE: why`` of a failed file operation (``SRC -> DST`` for a rename), with a hint for a full disk."""
    names = " -> ".join(str(n) for n in (exc.filename, exc.filename2) if n is not None)
    why = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        why += "; free some space or write elsewhere"
    elif exc.errno == errno.ENOTDIR:
        why += " (a part of the path is a file)"
    elif exc.errno == errno.EEXIST and exc.filename is not None and not Path(exc.filename).is_dir():
        why = "a file is in the way where a folder is needed"
    return f"{names}: {why}" if names else why


def expected_failure(exc: Exception) -> str | None:
    """The one-line message of an expected failure: bad input, a file system refusal (read-only, full, a file
    where a folder should be), a resource running out; None for anything else (a bug, which keeps its
    traceback)."""
    torch, yaml = sys.modules.get("torch"), sys.modules.get("yaml")  # only what a command has imported
    if isinstance(exc, InputError):
        message = str(exc)
    elif isinstance(exc, OSError):
        message = _os_error_line(exc)
    elif isinstance(exc, MemoryError) or (torch is not None and isinstance(exc, torch.OutOfMemoryError)):
        detail = f" ({exc})" if str(exc) else ""
        message = f"out of memory{detail}; use smaller images, --scale, --tile or --batch-size, or fewer --workers"
    elif isinstance(exc, RecursionError):
        message = f"an input is nested too deeply to read ({exc})"
    elif isinstance(exc, OverflowError):
        message = f"a number is out of range ({exc})"
    elif isinstance(exc, ValueError) and "embedded null byte" in str(exc):
        message = "a file name contains a NUL byte"
    elif yaml is not None and isinstance(exc, yaml.YAMLError):
        from gains.config import yaml_problem

        message = f"not valid YAML ({yaml_problem(exc)})"
    else:
        return None
    return re.sub(r"\s*\n\s*", " ", message.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gains`` and ``python -m gains``; returns the exit code.

    Every expected failure (see ``expected_failure``) is one line ``gains CMD: error: MESSAGE`` on stderr and
    exit code 2 (``--verbose`` logs its traceback first); a bad option is argparse's error, also one line.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"gains {args.command}: interrupted (run the same command again to resume)", file=sys.stderr)
        return 130
    except Exception as exc:
        message = expected_failure(exc)
        if message is None:
            raise
        log.debug("gains %s failed:", args.command, exc_info=True)
        print(f"gains {args.command}: error: {message}", file=sys.stderr)
        return 2
