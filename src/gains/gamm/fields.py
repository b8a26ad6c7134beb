"""Per-instance geometry and radial gradient fields, computed on bounding-box frames only.

For instance i with centroid (cy, cx) the reference builds ``z = (r - cy)^2 + (c - cx)^2`` over the
whole image, takes ``(gy, gx) = np.gradient(z)`` (central differences inside, one-sided on the image
border), ``theta = atan2(gy, factor * gx)`` with -4 outside the mask, and ``g = hypot(gy, gx)``.
Here the same arithmetic runs on a frame around the instance, widened by one pixel so that
``np.gradient`` gives the full-image values bit for bit; the full-image maximum of ``g`` (the
influence normaliser) is taken from the two outermost rows and columns, where it must lie.

Frames: an instance touches the windows anchored at rows ``[y0 - ws + 1, y1 - 1]`` (clipped to
``[0, H - ws]``); its *frame* is the pixel span of those windows, so every window statistic of the
instance is a box filter over its frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gains.core.masks import MaskCrop
from gains.gamm.windows import box_sums

SENTINEL = -4.0


def gradients(
    r0: int, r1: int, c0: int, c1: int, cy: float, cx: float, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """``np.gradient`` of the full-image radial field, restricted to rows r0:r1, cols c0:c1.

    Returns:
        (gy, gx), each float64 (r1 - r0, c1 - c0), equal to slices of the full-image gradient.
    """
    er0, er1 = max(r0 - 1, 0), min(r1 + 1, height)
    ec0, ec1 = max(c0 - 1, 0), min(c1 + 1, width)
    rr = np.arange(er0, er1, dtype=np.float64)[:, None]
    cc = np.arange(ec0, ec1, dtype=np.float64)[None, :]
    z = (rr - cy) ** 2 + (cc - cx) ** 2
    gy, gx = np.gradient(z)
    sl = (slice(r0 - er0, r0 - er0 + r1 - r0), slice(c0 - ec0, c0 - ec0 + c1 - c0))
    return gy[sl], gx[sl]


def full_image_gmax(cy: float, cx: float, height: int, width: int) -> float:
    """Maximum of the gradient magnitude over the whole image.

    Inside the image the magnitude is twice the distance to the centroid; on the border rows and
    columns one-sided differences apply. Either way the maximum lies in one of the four 2 x 2 corner
    blocks, which are evaluated with the reference's arithmetic.
    """
    if height < 6 or width < 6:
        gy, gx = gradients(0, height, 0, width, cy, cx, height, width)
        return float(np.sqrt(gy**2 + gx**2).max())
    r = np.array([0, 1, 2, height - 3, height - 2, height - 1], dtype=np.float64)[:, None]
    c = np.array([0, 1, 2, width - 3, width - 2, width - 1], dtype=np.float64)[None, :]
    z = (r - cy) ** 2 + (c - cx) ** 2
    gy = np.stack([z[1] - z[0], (z[2] - z[0]) / 2.0, (z[5] - z[3]) / 2.0, z[5] - z[4]])
    gx = np.stack([z[:, 1] - z[:, 0], (z[:, 2] - z[:, 0]) / 2.0, (z[:, 5] - z[:, 3]) / 2.0, z[:, 5] - z[:, 4]], axis=1)
    keep = [0, 1, 4, 5]
    gy, gx = gy[:, keep], gx[keep, :]
    return float(np.sqrt(gy**2 + gx**2).max())


@dataclass
class Geometry:
    """One instance's frame, anchors and factor-independent fields.

    Attributes:
        index: position of the instance in the image's annotation list.
        category_id: COCO category.
        crop: the tight mask.
        cy, cx: centroid (mean row, mean column of mask pixels), computed as ``np.mean`` does.
        fy0, fx0: frame origin; the frame has shape ``mask.shape``.
        mask: bool (fh, fw) mask on the frame.
        count: int (fh - ws + 1, fw - ws + 1) mask pixels per window; anchor (a, b) of this grid is
            the full-image anchor (fy0 + a, fx0 + b).
        gy, gx: the radial field's gradient on the frame; g: its magnitude; gmax: the full-image
            maximum of the magnitude.
    """

    index: int
    category_id: int
    crop: MaskCrop
    cy: float
    cx: float
    fy0: int
    fx0: int
    mask: np.ndarray
    count: np.ndarray
    gy: np.ndarray
    gx: np.ndarray
    g: np.ndarray
    gmax: float
    theta: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.mask.shape

    def direction(self, factor: int) -> np.ndarray:
        """theta = atan2(gy, factor * gx) on the frame, SENTINEL outside the mask (cached per factor)."""
        if factor not in self.theta:
            th = np.arctan2(self.gy, factor * self.gx)
            th[~self.mask] = SENTINEL
            self.theta[factor] = th
        return self.theta[factor]


def build_geometry(index: int, category_id: int, crop: MaskCrop, height: int, width: int, ws: int) -> Geometry:
    """Frame, centroid, window counts and gradient magnitude of one non-empty instance."""
    rr, cc = np.nonzero(crop.mask)
    n = rr.size
    # Integer sums are exact in float64, so this equals np.mean over full-image indices bit for bit.
    cy = np.float64(int(rr.sum()) + crop.y0 * n) / n
    cx = np.float64(int(cc.sum()) + crop.x0 * n) / n
    fy0 = max(crop.y0 - ws + 1, 0)
    fx0 = max(crop.x0 - ws + 1, 0)
    fy1 = min(crop.y1 + ws - 1, height)
    fx1 = min(crop.x1 + ws - 1, width)
    mask = np.zeros((fy1 - fy0, fx1 - fx0), dtype=bool)
    mask[crop.y0 - fy0 : crop.y1 - fy0, crop.x0 - fx0 : crop.x1 - fx0] = crop.mask
    count = np.rint(box_sums(mask.astype(np.float64), ws)).astype(np.int64)
    gy, gx = gradients(fy0, fy1, fx0, fx1, cy, cx, height, width)
    g = np.sqrt(gy**2 + gx**2)
    return Geometry(index, category_id, crop, float(cy), float(cx), fy0, fx0, mask, count, gy, gx, g,
                    full_image_gmax(cy, cx, height, width))
