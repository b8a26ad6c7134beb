"""RoI head modules of GAInS: the mask branch (exposing its inner feature), the guidance fusion and
the anomaly branch. Shapes are per RoI batch: pooled features [R, 256, 14, 14] -> logits [R, C, 28, 28].
"""

from __future__ import annotations

import torch
from torch import nn


class MaskBranch(nn.Module):
    """``num_convs`` x (conv3x3 + ReLU) -> inner; deconv 2x2 stride 2 + ReLU -> conv1x1 -> C logits.

    Used for the mask branch and, on the fused feature, for the anomaly branch (same layout).
    Init as detectron2: MSRA (kaiming normal, fan_out) convs and deconv, predictor N(0, 0.001), zero biases.
    """

    def __init__(self, in_channels: int, num_classes: int, conv_dim: int = 256, num_convs: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for k in range(num_convs):
            layers += [nn.Conv2d(in_channels if k == 0 else conv_dim, conv_dim, 3, padding=1), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(conv_dim, conv_dim, 2, stride=2)
        self.predictor = nn.Conv2d(conv_dim, num_classes, 1)
        for m in [*self.convs, self.deconv]:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[R, in, S, S] -> (logits [R, C, 2S, 2S], inner [R, conv_dim, S, S])."""
        inner = self.convs(x)
        return self.predictor(torch.relu(self.deconv(inner))), inner


class GuidanceFusion(nn.Module):
    """ReLU(conv kxk(concat(pooled, inner))): the reference's effective fusion (spec 2.3; its two dead
    layers are not reproduced) with k = 3; k = 1 mixes the two features per pixel at a ninth of the cost.
    [R, channels, S, S] x 2 -> [R, out_channels (default channels), S, S]."""

    def __init__(self, channels: int = 256, out_channels: int | None = None, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, out_channels or channels, kernel_size, padding=kernel_size // 2)

    def forward(self, pooled: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(torch.cat([pooled, inner], dim=1)))
