"""Conditional PatchGAN discriminator (HiFiC-style), used only in training.

It judges an image patch by patch *given the latent y^ it was decoded from*:
conditioning on y^ lets it ask "is this a plausible image for this code",
not just "is this a plausible image", which pushes the decoder to add
realistic detail that stays faithful to what was transmitted
(Mentzer et al., "High-Fidelity Generative Image Compression", 2020).
Spectral norm on every conv keeps it Lipschitz-bounded, which keeps GAN
training stable at the small batch sizes compression training uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class ConditionalDiscriminator(nn.Module):
    """Logits (N, 1, H/2^k, W/2^k) for image x (N, 3, H, W) in [0, 1] given y^ (N, C_y, H/u, W/u).

    k = len(channels) stride-2 4x4 convs; u = `upsample` (the codec's total
    downsampling, 16). y^ is embedded to `latent_embed` channels by a 1x1 conv,
    upsampled (nearest) to the image size and concatenated with x.

    In the latent family x is the autoencoder latent (image_channels 32, u 2):
    the discriminator looks at latents, not pixels. The autoencoder's decoder
    was itself trained adversarially to draw realistic texture from a real
    latent, so what decides whether the result looks real is whether the
    latent does; a blurred latent (the mean of what the code allows) is what
    decodes to a blurred image. At 1/8 of the image it costs 64 times fewer
    positions, and its gradient does not pass through the decoder.
    """

    def __init__(self, latent_channels: int, channels: Sequence[int] = (64, 128, 256, 256),
                 latent_embed: int = 12, upsample: int = 16, image_channels: int = 3):
        super().__init__()
        if not channels:
            raise ValueError("channels must name at least one conv layer")
        self.upsample = int(upsample)
        self.latent = spectral_norm(nn.Conv2d(latent_channels, latent_embed, kernel_size=1))
        layers: list[nn.Module] = []
        c_in = image_channels + latent_embed
        for c_out in channels:
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1)),
                       nn.LeakyReLU(0.2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.head = spectral_norm(nn.Conv2d(c_in, 1, kernel_size=1))

    def forward(self, x: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        c = F.leaky_relu(self.latent(y_hat), 0.2)
        c = F.interpolate(c, scale_factor=self.upsample, mode="nearest")
        if c.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"y_hat {tuple(y_hat.shape[-2:])} upsampled by {self.upsample} is "
                             f"{tuple(c.shape[-2:])}, but the image is {tuple(x.shape[-2:])}")
        return self.head(self.body(torch.cat([x, c.to(x.dtype)], dim=1)))
