"""Hyper-parameters of Gradient Anomaly Mapping (GAMM) and their per-variant defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

VARIANTS = ("isbi", "chrom", "nuclei")
ANCHORS = ("topleft", "center")

# (window_size, ga_factor, overlap_hl) recommended by the GAInS README for each published script.
VARIANT_DEFAULTS: dict[str, tuple[int, float, float]] = {
    "isbi": (5, 0.5, 0.1),
    "chrom": (5, 0.5, 0.3),
    "nuclei": (8, 0.8, 0.1),
}


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
    """

    variant: str = "isbi"
    window_size: int = 5
    ga_factor: float = 0.5
    overlap_hl: float = 0.1
    target_category: int | None = None
    anchor: str = "topleft"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown GAMM variant {self.variant!r}; expected one of {VARIANTS}")
        if self.anchor not in ANCHORS:
            raise ValueError(f"unknown window anchor {self.anchor!r}; expected one of {ANCHORS}")
        if int(self.window_size) != self.window_size or self.window_size < 2:
            raise ValueError(f"window_size must be an integer >= 2, got {self.window_size!r}")
        if not self.ga_factor > 0:
            raise ValueError(f"ga_factor must be > 0, got {self.ga_factor!r}")
        if not self.overlap_hl >= 0:
            raise ValueError(f"overlap_hl must be >= 0, got {self.overlap_hl!r}")

    @classmethod
    def for_variant(cls, variant: str, **overrides: Any) -> GammParams:
        """The README defaults of ``variant``, with any non-None keyword overriding them."""
        if variant not in VARIANT_DEFAULTS:
            raise ValueError(f"unknown GAMM variant {variant!r}; expected one of {VARIANTS}")
        ws, ga, ol = VARIANT_DEFAULTS[variant]
        base = cls(variant=variant, window_size=ws, ga_factor=ga, overlap_hl=ol)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (used in store manifests and hashes)."""
        return asdict(self)

    @property
    def tag(self) -> str:
        """Folder-friendly name in the reference's style, e.g. ``isbi_ws5_f0.5_ol0.1``."""
        tag = f"{self.variant}_ws{self.window_size}_f{self.ga_factor}_ol{self.overlap_hl}"
        return tag if self.anchor == "topleft" else tag + "_center"
