"""Training losses, in one place: rate and distortion (perceptual and adversarial terms join them)."""

from __future__ import annotations

import torch


def bits_per_pixel(bits: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """Per-image rate (N,) in bits -> bits per pixel (N,)."""
    return bits / num_pixels


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error (N,) on [0, 1] images."""
    return (x_hat - x).pow(2).flatten(1).mean(1)


def rate_distortion(bpp: torch.Tensor, distortion: torch.Tensor, lmbda: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of bpp + lambda * 255^2 * MSE, each image with its level's lambda.

    The 255^2 puts lambda on the usual 8-bit scale (as in CompressAI), so
    published lambda ladders carry over.
    """
    return (bpp + lmbda * (255.0 ** 2) * distortion).mean()
