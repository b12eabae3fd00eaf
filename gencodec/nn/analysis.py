"""The analysis transform E: the compact semantic encoder, image -> latent y."""

from __future__ import annotations

import torch
from torch import nn

from .layers import stage_blocks


#: Factor on the last convolution's initial weights (see __init__).
LATENT_INIT_GAIN = 100.0


class AnalysisTransform(nn.Module):
    """x (N,3,H,W) in [0,1] -> y (N, latent_channels, H/2^S, W/2^S), S = len(channels).

    Each stage halves the resolution with a strided convolution and refines at
    the new scale with residual blocks; the stages listed in `attention_stages`
    end with windowed self-attention, which gives the deepest features a view
    of their surroundings (the semantic part of the code). The early stages,
    at high resolution, carry no residual blocks by default: that is where
    convolutions cost the most time.
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
            raise ValueError("analysis channels and blocks must have the same length")
        layers: list[nn.Module] = []
        in_ch = 3
        for stage, (ch, n_blocks) in enumerate(zip(channels, blocks)):
            kernel = 5 if stage == 0 else 3
            layers.append(nn.Conv2d(in_ch, ch, kernel, stride=2, padding=kernel // 2))
            layers.append(nn.GELU())
            layers += stage_blocks(ch, n_blocks, stage in attention_stages, heads, window)
            in_ch = ch
        out = nn.Conv2d(in_ch, latent_channels, 3, padding=1)
        with torch.no_grad():
            # PyTorch's default init gives y a spread of about 0.02 on photos, which
            # rounds to all zeros at every rate level: no information reaches the
            # decoder and training creeps out of that regime over thousands of steps.
            # Starting y at a spread of about 1 makes the code carry information at once.
            out.weight.mul_(LATENT_INIT_GAIN)
        layers.append(out)
        self.layers = nn.Sequential(*layers)
        self.downsampling = 2 ** len(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Centre the input: the network then starts near a symmetric regime.
        return self.layers(x * 2.0 - 1.0)
