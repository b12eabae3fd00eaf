"""Float hyper transforms: y -> z (hyper-analysis) and z^ -> mean of y (hyper-synthesis).

The scale branch of the hyper-synthesis is not here: it must be exact on
every machine, so it lives in `gencodec.entropy.integer_scale` as an integer
network.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Upsample2x


class HyperAnalysis(nn.Module):
    """y (N, C_y, h, w) -> z (N, C_z, h/4, w/4)."""

    def __init__(self, latent_channels: int, hyper_channels: int, hyper_latent_channels: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(latent_channels, hyper_channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hyper_channels, hyper_channels, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(hyper_channels, hyper_latent_channels, 3, stride=2, padding=1),
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.layers(y)


class HyperSynthesisMean(nn.Module):
    """z^ (N, C_z, h/4, w/4), in y's units -> mean of y (N, C_y, h, w).

    The mean only shifts the reconstruction (s + mu); a one-ulp difference
    between machines moves y^ by one ulp and never changes a decoded symbol,
    so this branch may stay in floating point.
    """

    def __init__(self, hyper_latent_channels: int, hyper_channels: int, latent_channels: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(hyper_latent_channels, hyper_channels, 3, padding=1),
            nn.GELU(),
            Upsample2x(hyper_channels, hyper_channels),
            nn.GELU(),
            Upsample2x(hyper_channels, hyper_channels),
            nn.GELU(),
            nn.Conv2d(hyper_channels, latent_channels, 3, padding=1),
        )

    def forward(self, z_hat: torch.Tensor) -> torch.Tensor:
        return self.layers(z_hat)
