"""Load torch's native libraries inside a running napari without crashing it.

Linux with Mesa's software OpenGL (``llvmpipe``: virtual machines, remote desktops, Xvfb) loads Mesa's
``libLLVM`` into the process, with global symbols, when napari's canvas makes its OpenGL context. The PyPI
torch wheel brings triton, whose ``libtriton.so`` carries its own LLVM; torchvision imports ``torch._dynamo``,
which imports triton, and a ``libtriton.so`` loaded after Mesa's LLVM binds part of its LLVM calls to Mesa's
copy and crashes the process (segmentation fault). napari creates the canvas before any plugin code runs, so
the plugin cannot import torch first; ``load_torch`` instead loads triton with ``RTLD_DEEPBIND``, which makes
``libtriton.so`` use its own symbols before global ones. Nothing changes where triton is absent, already
imported, or where the platform has no ``RTLD_DEEPBIND`` (macOS, Windows: no Mesa LLVM clash there).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys


def load_torch() -> None:
    """Import triton (when installed and not yet imported) with ``RTLD_DEEPBIND``, then torch and torchvision.

    Call before the first import of anything that imports torch. Idempotent.
    """
    deepbind = getattr(os, "RTLD_DEEPBIND", 0)
    if deepbind and "triton" not in sys.modules and importlib.util.find_spec("triton") is not None:
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | deepbind)
        try:
            importlib.import_module("triton")
        except ImportError:  # a broken triton: torch then runs without it, as it does elsewhere
            pass
        finally:
            sys.setdlopenflags(flags)
    importlib.import_module("torchvision")
