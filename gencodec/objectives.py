"""What each training stage minimises, as functions of a model and a batch.

Kept in the package (not in train/) so the training script and the demo's
on-the-spot fit share one definition.
"""

from __future__ import annotations

import torch

from .losses import bits_per_pixel, mse, rate_distortion
from .model import GenCodecModel


def random_levels(batch_size: int, n_levels: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """One rate level per image, uniform over the ladder, so one model learns them all."""
    return torch.randint(0, n_levels, (batch_size,), device=device, generator=generator)


def codec_objective(model: GenCodecModel, x: torch.Tensor, level: torch.Tensor,
                    lambdas: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Stage 1, codec pretraining: rate + lambda(level) * MSE of the base reconstruction."""
    out = model(x, level)
    num_pixels = x.shape[-2] * x.shape[-1]
    bpp = bits_per_pixel(out["bits"], num_pixels)
    distortion = mse(out["x_bar"].float(), x.float())
    loss = rate_distortion(bpp.float(), distortion, lambdas[level])
    psnr = -10 * torch.log10(distortion.clamp_min(1e-10))
    metrics = {"loss": loss.detach(), "bpp": bpp.mean().detach(), "mse": distortion.mean().detach(),
               "psnr": psnr.mean().detach(),
               "bpp_z": bits_per_pixel(out["bits_z"], num_pixels).mean().detach()}
    return loss, metrics
