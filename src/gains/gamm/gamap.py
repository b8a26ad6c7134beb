"""The GA map of one annotation, stored as the crop where it differs from a constant fill."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GaMap:
    """A full-size (height, width) GA map = ``fill`` everywhere except a crop.

    Attributes:
        height, width: full image size.
        y0, x0: position of ``values[0, 0]`` in the image.
        values: float array (h, w) or None (then the map is constant ``fill``).
        fill: value outside the crop: 1.0 normally, NaN for the reference's NaN maps, 0.0 for the
            nuclei script's maps of annotations without neighbours.
    """

    height: int
    width: int
    y0: int = 0
    x0: int = 0
    values: np.ndarray | None = None
    fill: float = 1.0

    @property
    def is_nan(self) -> bool:
        """The reference produced NaN everywhere (a target instance with no other target instance)."""
        return bool(np.isnan(self.fill))

    @property
    def is_zero(self) -> bool:
        """The nuclei script's all-zero map (annotation without interacting neighbour)."""
        return self.fill == 0.0 and self.values is None

    def to_dense(self, dtype: type = np.float64) -> np.ndarray:
        """The full (height, width) map."""
        out = np.full((self.height, self.width), self.fill, dtype=dtype)
        if self.values is not None:
            h, w = self.values.shape
            out[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = self.values
        return out

    def sanitised(self, keep_zero: bool = False) -> GaMap:
        """All-ones in place of a NaN map (it would break training) and, unless ``keep_zero``, of an all-zero
        map (it silences that instance's mask loss)."""
        if self.is_nan or (self.is_zero and not keep_zero):
            return GaMap(self.height, self.width)
        return self

    def trimmed(self) -> GaMap:
        """Shrink the crop to the box where values differ from ``fill`` (drop it when none do)."""
        if self.values is None or np.isnan(self.fill):
            return self
        diff = self.values != self.fill
        rows = np.flatnonzero(diff.any(axis=1))
        if rows.size == 0:
            return GaMap(self.height, self.width, fill=self.fill)
        cols = np.flatnonzero(diff.any(axis=0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        return GaMap(self.height, self.width, self.y0 + int(r0), self.x0 + int(c0),
                     np.ascontiguousarray(self.values[r0:r1, c0:c1]), self.fill)
