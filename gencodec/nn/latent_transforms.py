"""The transforms of the latent family: autoencoder latent L -> code y, and decoded y^ -> L.

The image is first mapped by a frozen pretrained autoencoder (TAEF2) to L,
32 channels at 1/8 of its size. These transforms work on L only: each has
one stage at L's resolution (1/8 of the image) and one at half of it (1/16),
where y lives, with windowed attention there. A position of L is 64 image
pixels, so these layers cost little next to a pixel-space transform of the
same width.
"""

from __future__ import annotations

import torch
from torch import nn

from .analysis import LATENT_INIT_GAIN
from .layers import Upsample2x, stage_blocks


class LatentAnalysis(nn.Module):
    """L (N, in_channels, h, w) -> y (N, latent_channels, h/2, w/2)."""

    def __init__(self, in_channels: int = 32, latent_channels: int = 192, channels: tuple[int, int] = (128, 192),
                 blocks: tuple[int, int] = (1, 2), attention: bool = True, heads: int = 4, window: int = 8):
        super().__init__()
        if len(channels) != 2 or len(blocks) != 2:
            raise ValueError("the latent transforms have two stages: give two channels and two blocks")
        fine, coarse = channels
        out = nn.Conv2d(coarse, latent_channels, 3, padding=1)
        with torch.no_grad():
            out.weight.mul_(LATENT_INIT_GAIN / 5)  # y starts at a spread of about 1 (see analysis.py)
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, fine, 3, padding=1), nn.GELU(),
            *stage_blocks(fine, blocks[0], False, heads, window),
            nn.Conv2d(fine, coarse, 3, stride=2, padding=1), nn.GELU(),
            *stage_blocks(coarse, blocks[1], attention, heads, window),
            out)
        self.downsampling = 2

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.layers(latent)


class LatentSynthesis(nn.Module):
    """y^ (N, latent_channels, h, w) -> L_bar (N, out_channels, 2h, 2w) and the features at 2h x 2w.

    L_bar is the distortion-optimal latent (realism 0); the features describe
    the code at L's resolution for the generative denoiser.
    """

    def __init__(self, latent_channels: int = 192, out_channels: int = 32, channels: tuple[int, int] = (128, 192),
                 blocks: tuple[int, int] = (1, 2), attention: bool = True, heads: int = 4, window: int = 8):
        super().__init__()
        if len(channels) != 2 or len(blocks) != 2:
            raise ValueError("the latent transforms have two stages: give two channels and two blocks")
        fine, coarse = channels
        self.features = nn.Sequential(
            nn.Conv2d(latent_channels, coarse, 3, padding=1),
            *stage_blocks(coarse, blocks[1], attention, heads, window),
            Upsample2x(coarse, fine), nn.GELU(),
            *stage_blocks(fine, blocks[0], False, heads, window))
        self.out = nn.Conv2d(fine, out_channels, 3, padding=1)
        self.feature_channels = fine
        self.upsampling = 2

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(y_hat))

    def forward_with_features(self, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(y_hat)
        return self.out(features), features
