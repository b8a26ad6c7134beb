"""Imports run downhill (design.md): gamm never imports torch or the layers above it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gains"

# package -> modules it must never import
ABOVE_CORE = ("gains.gamm", "gains.data", "gains.models", "gains.engine", "gains.evaluation", "gains.inference",
              "gains.formats", "gains.visualize", "gains.cli", "gains.report", "gains.napari", "gains.export",
              "gains.demo", "gains.zoo", "gains.distributed")
FORBIDDEN = {
    "core": ABOVE_CORE,
    "gamm": ("torch", "torchvision", "matplotlib", "gains.data", "gains.models", "gains.engine", "gains.evaluation",
             "gains.inference", "gains.visualize", "gains.cli", "gains.report", "gains.formats"),
    "data": ("gains.models", "gains.engine", "gains.evaluation", "gains.inference", "gains.visualize", "gains.cli",
             "gains.formats"),
    "models": ("gains.data", "gains.engine", "gains.evaluation", "gains.inference", "gains.report", "gains.cli",
               "gains.formats"),
    "engine": ("gains.inference", "gains.report", "gains.cli", "gains.visualize", "gains.formats"),
    "evaluation": ("gains.inference", "gains.report", "gains.cli", "gains.visualize", "gains.engine.train",
                   "gains.formats"),
    "formats": ("torch", "torchvision", "gains.models", "gains.engine", "gains.evaluation", "gains.inference",
                "gains.cli", "gains.report", "gains.demo", "gains.napari"),  # visualize draws the overlay
    "inference": ("gains.report", "gains.cli", "gains.demo", "gains.export", "gains.distributed", "distributed",
                  "dask"),
    "distributed": ("gains.report", "gains.cli", "gains.demo", "gains.export", "gains.napari"),
    "export": ("gains.report", "gains.cli", "gains.demo", "gains.napari", "gains.visualize"),
}
LEAVES = {"errors.py": ("gains.",), "atomic.py": ("gains.",),
          "evaluation/metrics.py": ("torch", "gains."),
          "intensity.py": ("torch", "gains."), "zoo/__init__.py": ("gains.",),
          "core/images.py": ("torch", "gains."),
          "core/planes.py": ("torch", "gains."), "core/lazy.py": ("torch", "gains."),
          "core/masks.py": ("torch",), "core/coco.py": ("torch",), "core/checks.py": ("torch", "gains."),
          "presets/__init__.py": ("gains.",), "jsonfile.py": ("gains.",)}
GROUND = ("gains.errors", "gains.jsonfile", "gains.core.planes", "gains.core.lazy")  # what even a leaf may import


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_packages_import_downhill_only() -> None:
    problems = []
    for pkg, banned in FORBIDDEN.items():
        for file in (SRC / pkg).rglob("*.py"):
            for name in imported_names(file):
                if any(name == b or name.startswith(b + ".") for b in banned):
                    problems.append(f"{file.relative_to(SRC)} imports {name}")
    for leaf, banned in LEAVES.items():
        for name in imported_names(SRC / leaf):
            if any(name.startswith(b) for b in banned) and name not in GROUND:
                problems.append(f"{leaf} imports {name}")
    assert not problems, problems


def test_nothing_imports_the_napari_plugin() -> None:
    """gains.napari is a leaf shell over gains.inference: no other module imports it (nor napari or Qt)."""
    problems = [f"{file.relative_to(SRC)} imports {name}" for file in SRC.rglob("*.py") if "napari" not in file.parts
                for name in imported_names(file) if name.split(".")[0] in ("napari", "magicgui", "qtpy")
                or name == "gains.napari" or name.startswith("gains.napari.")]
    assert not problems, problems
    assert "gains.formats.labels" in imported_names(SRC / "napari" / "layers.py")


def test_scan_sees_real_imports() -> None:
    assert "numpy" in imported_names(SRC / "gamm" / "maps.py")
    assert "gains.gamm.kernels" in imported_names(SRC / "gamm" / "maps.py")


def test_the_python_api_is_a_top_floor() -> None:
    """gains.api sits beside the CLI: it builds on inference and formats, and no module imports it (``gains``
    loads it lazily, on first use of ``gains.segment`` or ``gains.Model``)."""
    banned = ("gains.cli", "gains.napari", "gains.export", "gains.report", "gains.demo")
    assert not [name for name in imported_names(SRC / "api.py") if name.startswith(banned)]
    users = [str(f.relative_to(SRC)) for f in SRC.rglob("*.py") if "gains.api" in imported_names(f)]
    assert users == ["__init__.py"]  # for type checkers only
