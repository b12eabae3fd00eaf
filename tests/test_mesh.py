"""The periodic mesh: the evaluation's measure of it, and the training terms that take it away."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gencodec.evaluation import metrics
from gencodec.training import losses
from gencodec.training.objectives import PERIODIC

from .conftest import generative_objective, moving_denoiser_model, smooth_image


def _period_pattern(height: int, width: int, period: int, amplitude: float) -> np.ndarray:
    """A pattern that repeats every `period` pixels in both directions, of RMS `amplitude` per channel."""
    rng = np.random.default_rng(0)
    tile = rng.standard_normal((period, period, 3))
    tile -= tile.mean((0, 1))
    tile *= amplitude / np.sqrt(np.mean(tile ** 2))
    return np.tile(tile, (height // period, width // period, 1))


def test_mesh_measures_a_drawn_pattern_in_levels_and_ignores_a_cast_and_blur():
    original = smooth_image(64, 96).astype(np.float64)
    drawn = np.clip(original + _period_pattern(64, 96, 4, 3.0), 0, 255)
    assert metrics.mesh(original.astype(np.uint8), original.astype(np.uint8)) == 0.0
    # A pattern of RMS 3 levels (less what clipping and rounding take) measures about 3.
    assert metrics.mesh(drawn.round().astype(np.uint8), original.astype(np.uint8)) == pytest.approx(3.0, abs=0.3)
    cast = np.clip(original + 20, 0, 255).astype(np.uint8)
    assert metrics.mesh(cast, original.astype(np.uint8)) < 0.5  # a colour cast repeats everywhere: not a mesh
    noise = np.random.default_rng(1).normal(0, 10, original.shape)
    noisy = np.clip(original + noise, 0, 255).round().astype(np.uint8)
    assert metrics.mesh(noisy, original.astype(np.uint8)) < 1.5  # texture that follows nothing averages out


def test_mesh_of_tiny_images_and_shape_errors():
    one = np.zeros((4, 4, 3), np.uint8)
    assert metrics.mesh(one, one) == 0.0  # smaller than one period
    with pytest.raises(Exception, match="differ in shape"):
        metrics.mesh(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 16, 3), np.uint8))


def test_periodic_mse_sees_a_period_4_pattern_and_little_else():
    x = torch.from_numpy(smooth_image(64, 64).astype(np.float32) / 255).permute(2, 0, 1)[None]
    pattern = torch.from_numpy(_period_pattern(64, 64, 4, 0.02).astype(np.float32)).permute(2, 0, 1)[None]
    assert losses.periodic_mse(x, x, 4, 64).item() == 0.0
    meshed = losses.periodic_mse(x + pattern, x, 4, 64).item()
    # The pattern's phase means are the pattern itself: its mean square, 0.02^2.
    assert meshed == pytest.approx(0.02 ** 2, rel=1e-3)
    cast = losses.periodic_mse(x + 0.1, x, 4, 64).item()
    noise = losses.periodic_mse(x + 0.02 * torch.randn_like(x), x, 4, 64).item()
    assert cast < 1e-12 and noise < 0.1 * meshed
    # Windows larger than the crop fall back to one window per crop.
    assert losses.periodic_mse(x[..., :32, :32] + pattern[..., :32, :32], x[..., :32, :32], 4, 64).item() == (
        pytest.approx(0.02 ** 2, rel=1e-3))


def test_random_offset_crop_cuts_both_images_alike():
    a = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    b = a + 1
    assert losses.random_offset_crop(a, b, 1) == (a, b)
    offsets = set()
    torch.manual_seed(0)
    for _ in range(40):
        ca, cb = losses.random_offset_crop(a, b, 4)
        assert ca.shape == cb.shape == (2, 3, 13, 13)
        assert torch.equal(cb - ca, torch.ones_like(ca))
        offsets.add(int(ca[0, 0, 0, 0]))
    assert len(offsets) > 8  # every step may see the grid at another phase


def test_periodic_term_is_measured_and_weighted_in():
    model = moving_denoiser_model()
    x = torch.rand(2, 3, 64, 64)
    level, lambdas = torch.tensor([0, 1]), torch.ones(model.n_levels)
    results = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        loss, m = generative_objective(model, periodic=weight, lpips_shift=4).generator_loss(
            model, x, level, lambdas)
        results[weight] = (loss.item(), m["periodic"].item())
    (plain, measured), (weighted, measured_again) = results[0.0], results[1.0]
    assert measured == pytest.approx(measured_again) and measured > 0
    assert weighted == pytest.approx(plain + measured, rel=1e-4)
    assert PERIODIC == 4
