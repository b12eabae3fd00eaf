"""The conditional denoiser of the generative decoder.

It works on the residual r = x - x_bar, folded by space-to-depth into
`fold`^2 * 3 channels at 1/`fold` resolution: a 768x512 image becomes a
48-channel 192x128 tensor, which a small UNet handles in a fraction of the
time a full-resolution UNet would need. The condition is concatenated to its
input: the folded x_bar and the base synthesis features at the same
resolution, so the denoiser sees both the picture so far and what the code
says about it (y^ through G's features). An optional refiner then works at
full resolution on the unfolded prediction (PixelRefiner says why).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from .unet import UNet2DModel
from torch import nn


class PixelRefiner(nn.Module):
    """A few convolutions at full resolution, added to the UNet's unfolded prediction.

    The UNet works at 1/fold: each fold x fold patch of its output comes from one
    feature vector through one output convolution, so texture that crosses patch
    borders, or finer than the features can describe, is hard for it to draw.
    The refiner sees the unfolded prediction, the unfolded noisy input and x_bar,
    pixel by pixel. Its last convolution starts at zero, so a refiner added to a
    trained denoiser changes nothing until it is trained.
    """

    def __init__(self, channels: int, layers: int = 2):
        super().__init__()
        convs = [nn.Conv2d(9, channels, 3, padding=1)]
        convs += [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(layers)]
        self.hidden = nn.ModuleList(convs)
        self.out = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.act = nn.GELU()

    def forward(self, prediction: torch.Tensor, r_t: torch.Tensor, x_bar: torch.Tensor) -> torch.Tensor:
        """All three at full resolution (N, 3, H, W); returns the correction to the prediction."""
        h = torch.cat([prediction, r_t, x_bar], dim=1)
        for conv in self.hidden:
            h = self.act(conv(h))
        return self.out(h)


class ResidualDenoiser(nn.Module):
    """D(r_t, t | x_bar, features) -> prediction of the clean folded residual (x0-parameterisation).

    `x_bar` is the base reconstruction: an image (image_channels 3), or, in the
    latent family, the base latent (image_channels 32, fold 1, centre False).
    """

    def __init__(self, feature_channels: int, fold: int = 4, block_out_channels: tuple = (64, 96, 128),
                 layers_per_block: int = 1, attention: bool = True, attention_head_dim: int = 32,
                 norm_num_groups: int = 32, refine_channels: int = 0, refine_layers: int = 2,
                 image_channels: int = 3, centre: bool = True):
        super().__init__()
        self.fold = fold
        self.residual_channels = image_channels * fold * fold
        # The condition's base is an image in [0, 1] (centred to [-1, 1]) or an autoencoder latent (as it is).
        self.centre = centre
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
        self.refiner = PixelRefiner(refine_channels, refine_layers) if refine_channels else None

    def fold_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, self.fold)

    def unfold_image(self, r: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(r, self.fold)

    def condition(self, x_bar: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The tensor the denoiser is conditioned on, at the folded resolution."""
        base = x_bar * 2 - 1 if self.centre else x_bar
        return torch.cat([self.fold_image(base), features], dim=1)

    def forward(self, r_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        pred = self.unet(torch.cat([r_t, condition], dim=1), t).sample
        if self.refiner is None:
            return pred
        # The condition starts with the folded x_bar (see `condition`).
        x_bar = self.unfold_image(condition[:, :self.residual_channels])
        return pred + self.fold_image(self.refiner(self.unfold_image(pred), self.unfold_image(r_t), x_bar))
