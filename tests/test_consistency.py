"""The decoder stages' consistency term: realism 1's thumbnails are tied to realism 0's."""

from __future__ import annotations

import pytest
import torch

from gencodec.training import losses
from gencodec.training.objectives import THUMBNAIL

from .conftest import generative_objective, moving_denoiser_model


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
