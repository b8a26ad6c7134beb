"""The one exception type for bad user input; the CLI prints it as a single line and exits non-zero."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: the message names the file and the item (image, annotation) at fault."""
