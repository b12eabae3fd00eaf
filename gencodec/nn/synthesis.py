"""The base synthesis transform G: decoded latent y^ -> distortion-optimal image x_bar."""

from __future__ import annotations

import torch
from torch import nn

from .layers import Upsample2x, stage_blocks


class SynthesisTransform(nn.Module):
    """y^ (N, latent_channels, h, w) -> x_bar (N, 3, h*2^S, w*2^S), unclamped, in about [0, 1].

    The mirror of the analysis transform: the deepest stage first (with
    attention), then sub-pixel upsampling stage by stage. The output is the
    realism-0 reconstruction, and the generative decoder builds on it.
    """

    def __init__(
        self,
        latent_channels: int = 128,
        channels: tuple[int, ...] = (64, 96, 128, 192),
        blocks: tuple[int, ...] = (0, 1, 1, 2),
        attention_stages: tuple[int, ...] = (3,),
        heads: int = 4,
        window: int = 8,
    ):
        super().__init__()
        if len(channels) != len(blocks):
            raise ValueError("synthesis channels and blocks must have the same length")
        stages = list(range(len(channels)))[::-1]
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, channels[-1], 3, padding=1)]
        for stage in stages:
            ch = channels[stage]
            layers += stage_blocks(ch, blocks[stage], stage in attention_stages, heads, window)
            if stage > 0:
                layers += [Upsample2x(ch, channels[stage - 1]), nn.GELU()]
            else:
                # The last step goes straight to RGB: a wide convolution at
                # full resolution would cost more than the rest together.
                layers.append(Upsample2x(ch, 3))
        self.layers = nn.Sequential(*layers)
        self.upsampling = 2 ** len(channels)

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.layers(y_hat) * 0.5 + 0.5
