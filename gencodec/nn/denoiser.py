"""The conditional denoiser of the generative decoder.

It works on the residual r = x - x_bar, folded by space-to-depth into
`fold`^2 * 3 channels at 1/`fold` resolution: a 768x512 image becomes a
48-channel 192x128 tensor, which a small UNet handles in a fraction of the
time a full-resolution UNet would need. The condition is concatenated to its
input: the folded x_bar and the base synthesis features at the same
resolution, so the denoiser sees both the picture so far and what the code
says about it (y^ through G's features).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from torch import nn


class ResidualDenoiser(nn.Module):
    """D(r_t, t | x_bar, features) -> prediction of the clean folded residual (x0-parameterisation)."""

    def __init__(self, feature_channels: int, fold: int = 4, block_out_channels: tuple = (64, 96, 128),
                 layers_per_block: int = 1, attention: bool = True, attention_head_dim: int = 32,
                 norm_num_groups: int = 32):
        super().__init__()
        self.fold = fold
        self.residual_channels = 3 * fold * fold
        depth = len(block_out_channels)
        down = ["DownBlock2D"] * depth
        up = ["UpBlock2D"] * depth
        if attention:  # attention at the coarsest level only, where tokens are few
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        self.unet = UNet2DModel(
            in_channels=2 * self.residual_channels + feature_channels,
            out_channels=self.residual_channels,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            attention_head_dim=attention_head_dim,
            norm_num_groups=norm_num_groups,
            add_attention=attention,
        )
        self.multiple = 2 ** (depth - 1)  # the UNet's input must divide by this

    def fold_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, self.fold)

    def unfold_image(self, r: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(r, self.fold)

    def condition(self, x_bar: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The tensor the denoiser is conditioned on, at the folded resolution."""
        return torch.cat([self.fold_image(x_bar * 2 - 1), features], dim=1)

    def forward(self, r_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([r_t, condition], dim=1), t).sample
