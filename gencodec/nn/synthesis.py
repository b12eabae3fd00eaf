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
        feature_scale: int = 4,
    ):
        super().__init__()
        if len(channels) != len(blocks):
            raise ValueError("synthesis channels and blocks must have the same length")
        # Stage s works at 1/2^(s+1) of the image; the features handed to the
        # generative decoder come from the stage at 1/feature_scale.
        feature_stage = int(feature_scale).bit_length() - 2
        if 2 ** (feature_stage + 1) != feature_scale or not 0 <= feature_stage < len(channels):
            raise ValueError(f"feature_scale must be a power of two from 2 to {2 ** len(channels)}")
        self.feature_channels = channels[feature_stage]
        stages = list(range(len(channels)))[::-1]
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, channels[-1], 3, padding=1)]
        for stage in stages:
            ch = channels[stage]
            layers += stage_blocks(ch, blocks[stage], stage in attention_stages, heads, window)
            if stage == feature_stage:
                self.feature_index = len(layers) - 1  # output of this layer = the features
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

    def forward_with_features(self, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_bar and the feature map at 1/feature_scale resolution, in one pass."""
        h, features = y_hat, None
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i == self.feature_index:
                features = h
        return h * 0.5 + 0.5, features
