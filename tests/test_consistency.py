"""Thumbnail terms: the decoder stages' consistency (realism 1's thumbnails tied to realism 0's) and the
pixel codec's thumb distortion (bits to layout and colours)."""

from __future__ import annotations

import pytest
import torch

from gencodec.training import losses
from gencodec.training.objectives import THUMBNAIL

from .conftest import generative_objective, moving_denoiser_model, small_model


def test_thumbnail_mse_ignores_texture_inside_a_block_and_sees_a_cast():
    x = torch.rand(2, 3, 32, 32)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2 * 2 - 1.0
    assert torch.allclose(losses.thumbnail_mse(x + 0.1 * checker, x, 8), torch.zeros(2), atol=1e-12)
    cast = x.clone()
    cast[:, 2] += 0.06
    assert torch.allclose(losses.thumbnail_mse(cast, x, 8), torch.full((2,), 0.06 ** 2 / 3), rtol=1e-4)


def test_consistency_term_is_added_and_pulls_on_the_denoiser():
    model = moving_denoiser_model()
    x = torch.rand(2, 3, 64, 64)
    level, lambdas = torch.tensor([0, 1]), torch.ones(model.n_levels)
    losses_by_weight = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)  # the same noise for both
        model.zero_grad()
        loss, metrics = generative_objective(model, consistency=weight).generator_loss(model, x, level, lambdas)
        loss.backward()
        losses_by_weight[weight] = (loss.item(), metrics["psnr_thumb_drift"].item(),
                                    sum(p.grad.abs().sum().item() for p in model.denoiser.parameters()
                                        if p.grad is not None))
    (plain, drift, grad_plain), (tied, drift_again, grad_tied) = losses_by_weight[0.0], losses_by_weight[1.0]
    assert drift == pytest.approx(drift_again)  # measured either way
    assert drift < 60  # the denoiser did move the thumbnails
    mse = 10 ** (-drift / 10)  # psnr_thumb_drift is a mean PSNR over 2 images: close enough for a lower bound
    assert tied > plain + 0.5 * 255 ** 2 * mse * 0.1
    assert grad_tied != pytest.approx(grad_plain)
    assert THUMBNAIL == 8


def test_thumb_distortion_adds_the_thumbnail_mse_at_each_images_lambda():
    from gencodec.training.objectives import Space, codec_objective

    model = small_model().eval()
    x = torch.rand(2, 3, 64, 64)
    level, lambdas = torch.tensor([0, 1]), torch.tensor([0.5, 2.0] + [1.0] * (model.n_levels - 2))
    with torch.no_grad():
        plain, metrics = codec_objective(model, x, level, lambdas)
        weighted, thumb_metrics = codec_objective(model, x, level, lambdas, thumb_distortion=3.0)
        x_bar = model(x, level)["x_bar"]
    expected = plain + (lambdas[level] * 3.0 * 255 ** 2 * losses.thumbnail_mse(x_bar, x, THUMBNAIL)).mean()
    assert weighted > plain
    assert torch.allclose(weighted, expected, rtol=1e-5)
    assert thumb_metrics["psnr"] == pytest.approx(metrics["psnr"].item())  # PSNR stays the plain one
    assert "psnr_thumb" in thumb_metrics and "psnr_thumb" not in metrics
    with pytest.raises(ValueError, match="applies to the pixel family's image space"):
        codec_objective(model, x, level, lambdas, Space(scale=8, render=lambda s: s), thumb_distortion=1.0)
