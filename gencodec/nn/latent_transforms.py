"""The transforms of the latent family: autoencoder latent L -> code y, and decoded y^ -> L.

The image is first mapped by a frozen pretrained autoencoder (TAEF2) to L,
32 channels at 1/8 of its size. These transforms work on L only: each has
one stage at L's resolution (1/8 of the image) and one or more below it, each
at half the resolution of the one before, with windowed attention; y lives at
the coarsest (1/16 with two stages, 1/32 with three). A position of L is 64 image
pixels, so these layers cost little next to a pixel-space transform of the
same width.
"""

from __future__ import annotations

import torch
from torch import nn

from .analysis import LATENT_INIT_GAIN
from .layers import Upsample2x, stage_blocks


class LatentAnalysis(nn.Module):
    """L (N, in_channels, h, w) -> y (N, latent_channels, h / 2^(k-1), w / 2^(k-1)) for k stages.

    Stage 0 works at L's resolution; each further stage starts with a stride-2
    convolution and has windowed attention after its blocks (if `attention`).
    """

    def __init__(self, in_channels: int = 32, latent_channels: int = 192, channels: tuple[int, ...] = (128, 192),
                 blocks: tuple[int, ...] = (1, 2), attention: bool = True, heads: int = 4, window: int = 8):
        super().__init__()
        _check_stages(channels, blocks)
        out = nn.Conv2d(channels[-1], latent_channels, 3, padding=1)
        with torch.no_grad():
            out.weight.mul_(LATENT_INIT_GAIN / 5)  # y starts at a spread of about 1 (see analysis.py)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 3, padding=1), nn.GELU(),
                                   *stage_blocks(channels[0], blocks[0], False, heads, window)]
        for previous, width, n_blocks in zip(channels, channels[1:], blocks[1:]):
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.GELU(),
                       *stage_blocks(width, n_blocks, attention, heads, window)]
        self.layers = nn.Sequential(*layers, out)
        self.downsampling = 2 ** (len(channels) - 1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.layers(latent)


class LatentSynthesis(nn.Module):
    """y^ (N, latent_channels, h, w) -> L_bar (N, out_channels, h * 2^(k-1), w * 2^(k-1)) and the features there.

    L_bar is the distortion-optimal latent (realism 0); the features describe
    the code at L's resolution for the generative denoiser. The stages mirror
    LatentAnalysis's, coarsest first.
    """

    def __init__(self, latent_channels: int = 192, out_channels: int = 32, channels: tuple[int, ...] = (128, 192),
                 blocks: tuple[int, ...] = (1, 2), attention: bool = True, heads: int = 4, window: int = 8):
        super().__init__()
        _check_stages(channels, blocks)
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, channels[-1], 3, padding=1)]
        for index in range(len(channels) - 1, 0, -1):
            layers += [*stage_blocks(channels[index], blocks[index], attention, heads, window),
                       Upsample2x(channels[index], channels[index - 1]), nn.GELU()]
        self.features = nn.Sequential(*layers, *stage_blocks(channels[0], blocks[0], False, heads, window))
        self.out = nn.Conv2d(channels[0], out_channels, 3, padding=1)
        self.feature_channels = channels[0]
        self.upsampling = 2 ** (len(channels) - 1)

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(y_hat))

    def forward_with_features(self, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(y_hat)
        return self.out(features), features


def _check_stages(channels, blocks) -> None:
    if len(channels) < 2 or len(channels) != len(blocks):
        raise ValueError(f"the latent transforms need two or more stages, as many channels as blocks: "
                         f"got channels {list(channels)} and blocks {list(blocks)}")
