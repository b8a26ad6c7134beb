"""Hyper-parameters of Gradient Anomaly Mapping (GAMM) and their per-variant defaults."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from gains.errors import InputError

VARIANTS = ("isbi", "chrom", "nuclei")
ANCHORS = ("topleft", "center")
ZERO_MAPS = ("ones", "keep")

# (window_size, ga_factor, overlap_hl) recommended by the GAInS README for each published script.
VARIANT_DEFAULTS: dict[str, tuple[int, float, float]] = {
    "isbi": (5, 0.5, 0.1),
    "chrom": (5, 0.5, 0.3),
    "nuclei": (8, 0.8, 0.1),
}


def _number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class GammParams:
    """Everything that determines a GA map besides the annotations.

    Attributes:
        variant: which published script to reproduce: ``isbi`` (intra min(d1, d2), inter min(e1, e2)),
            ``chrom`` (intra d1, inter min(e1, e2)) or ``nuclei`` (per-annotation neighbour groups,
            inter e1).
        window_size: side of the square sliding window, in pixels.
        ga_factor: a map's values lie in [1, 1 + ga_factor].
        overlap_hl: added where two target instances overlap (isbi/chrom; the nuclei script never adds it).
        target_category: COCO category id whose instances get anomaly maps; others get all-ones maps.
            None (the default) means the smallest category id of the annotations being processed.
        anchor: ``topleft`` paints each pixel with the window whose top-left corner it is (the
            reference); ``center`` uses the window centred on the pixel.
        every_category: give every category's instances maps, each category computed as the target in turn
            (``target_category`` is then ignored); False (the reference): only the target category.
        zero_maps: what sanitising does with the nuclei script's all-zero maps (an annotation without an
            interacting neighbour): ``ones`` replaces them by all-ones maps (plain BCE for that instance),
            ``keep`` keeps them as the reference trains (that instance's mask loss and GA target are 0).
            NaN maps become all-ones either way.
    """

    variant: str = "isbi"
    window_size: int = 5
    ga_factor: float = 0.5
    overlap_hl: float = 0.1
    target_category: int | None = None
    anchor: str = "topleft"
    every_category: bool = False
    zero_maps: str = "ones"

    def __post_init__(self) -> None:
        """Refuse unknown choices and out-of-range numbers (``InputError``, a ``ValueError``)."""
        if self.variant not in VARIANTS:
            raise InputError(f"unknown GAMM variant {self.variant!r}; expected one of {VARIANTS}")
        if self.anchor not in ANCHORS:
            raise InputError(f"unknown window anchor {self.anchor!r}; expected one of {ANCHORS}")
        if self.zero_maps not in ZERO_MAPS:
            raise InputError(f"unknown zero_maps {self.zero_maps!r}; expected one of {ZERO_MAPS}")
        if not _number(self.window_size) or int(self.window_size) != self.window_size or self.window_size < 2:
            raise InputError(f"window_size must be an integer >= 2, got {self.window_size!r}")
        if not (_number(self.ga_factor) and self.ga_factor > 0):
            raise InputError(f"ga_factor must be a finite number > 0, got {self.ga_factor!r}")
        if not (_number(self.overlap_hl) and self.overlap_hl >= 0):
            raise InputError(f"overlap_hl must be a finite number >= 0, got {self.overlap_hl!r}")

    @classmethod
    def for_variant(cls, variant: str, **overrides: Any) -> GammParams:
        """The README defaults of ``variant``, with any non-None keyword overriding them."""
        if variant not in VARIANT_DEFAULTS:
            raise InputError(f"unknown GAMM variant {variant!r}; expected one of {VARIANTS}")
        ws, ga, ol = VARIANT_DEFAULTS[variant]
        base = cls(variant=variant, window_size=ws, ga_factor=ga, overlap_hl=ol)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (used in store manifests and hashes). ``every_category`` and ``zero_maps`` appear
        only when they differ from the reference, so stores written before they existed stay valid."""
        d = asdict(self)
        for key, reference in (("every_category", False), ("zero_maps", "ones")):
            if d[key] == reference:
                del d[key]
        return d

    @property
    def tag(self) -> str:
        """Folder-friendly name in the reference's style, e.g. ``isbi_ws5_f0.5_ol0.1``."""
        tag = f"{self.variant}_ws{self.window_size}_f{self.ga_factor}_ol{self.overlap_hl}"
        tag += "_center" if self.anchor == "center" else ""
        tag += "_allcat" if self.every_category else ""
        return tag + ("_zero" if self.zero_maps == "keep" else "")
