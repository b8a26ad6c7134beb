"""Argument types of the ``gains`` command: every number is range-checked where it is parsed.

A bad value is argparse's usage error, printed by ``OneLineParser`` as one line naming the flag
(``gains predict: error: argument --tile: must be an integer >= 0 (0: never tile), got '-5'``), exit 2.
Nothing here imports torch or numpy: the parser stays cheap to build.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn, TypeVar

T = TypeVar("T", int, float)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, in the form ``gains.cli.main`` prints every failure."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE (see PROG --help)`` on stderr and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def checked(convert: Callable[[str], T], test: Callable[[T], bool], rule: str) -> Callable[[str], T]:
    """An argparse ``type``: ``convert(text)``, refused unless finite and ``test(value)`` holds.

    Args:
        convert: ``int`` or ``float``.
        test: the range the value must lie in.
        rule: what the error says the value must be, e.g. ``an integer >= 1``.
    """

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or not test(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return value

    return parse


def int_at_least(low: int, note: str = "") -> Callable[[str], int]:
    """An integer ``>= low``; ``note`` (e.g. ``0: never tile``) is added to the rule in parentheses."""
    return checked(int, lambda v: v >= low, f"an integer >= {low}" + (f" ({note})" if note else ""))


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
positive_float = checked(float, lambda v: v > 0, "a finite number > 0")
non_negative_float = checked(float, lambda v: v >= 0, "a finite number >= 0")
probability = checked(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")

def device(text: str) -> str:
    """A device spec, ``auto``, ``cpu``, ``cuda`` or ``cuda:i``, that this machine has (see
    ``gains.core.parallel.device_problem``; torch is imported only for a spec other than auto or cpu)."""
    if text not in ("auto", "cpu"):
        from gains.core.parallel import device_problem

        problem = device_problem(text)
        if problem:
            raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text
