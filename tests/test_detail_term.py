"""The detail term: texture as strong as the photo's, window by window (no hatching drawn on a smooth sky)."""

from __future__ import annotations

import pytest
import torch
import yaml

from gencodec.training import losses
from gencodec.training.objectives import DETAIL_WINDOW

from .conftest import ROOT, generative_objective, moving_denoiser_model
from .test_training_config import _error


def _photo_with_a_textured_half(size: int = 64) -> torch.Tensor:
    """A smooth picture (colour gradients, like a blurred background) whose right half carries strong grain."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    x = torch.stack([0.3 + 0.4 * xx, 0.5 + 0.2 * torch.sin(3 * yy), 0.6 - 0.3 * xx * yy])[None]
    grain = torch.zeros_like(x)
    grain[..., size // 2:] = 0.08 * torch.randn(1, 1, size, size // 2, generator=torch.Generator().manual_seed(0))
    return x + grain


def test_local_detail_sees_grain_and_not_a_cast_or_a_gradient():
    x = _photo_with_a_textured_half()
    detail = losses.local_detail(x, 8)
    assert detail.shape == (1, 1, 8, 8)
    smooth, textured = detail[..., :, :3], detail[..., :, 5:]
    assert textured.min() > 100 * smooth.max()
    assert torch.allclose(losses.local_detail(x + 0.1, 8), detail, atol=1e-7)  # a cast is not detail


def test_the_detail_term_pays_for_texture_drawn_on_smooth_areas_and_for_texture_lost():
    photo = _photo_with_a_textured_half()
    assert losses.detail_log_l1(photo, photo).item() == 0.0
    hatching = 0.03 * torch.sin(torch.arange(64.0) * 2.2)[None, None, :, None].expand(1, 3, 64, 64)
    drawn = photo + hatching                       # hatching over the smooth half and the grain alike
    blurred = photo.clone()
    blurred[..., 32:] = photo[..., :32].flip(-1)   # the grain gone: the smooth half mirrored over it
    both_drawn, invented_drawn = losses.detail_log_l1(drawn, photo, one_sided=True)
    both_lost, invented_lost = losses.detail_log_l1(blurred, photo, one_sided=True)
    assert both_drawn.item() > 1.0 and both_lost.item() > 1.0
    # The one-sided part is what was invented: most of the hatching's cost, none of the lost grain's.
    assert invented_drawn.item() > 0.4 * both_drawn.item() and invented_lost.item() == 0.0
    # Grain one level strong, the floor, costs little next to the hatching.
    faint = photo + (1 / 255) * torch.randn(photo.shape, generator=torch.Generator().manual_seed(1))
    assert losses.detail_log_l1(faint, photo).item() < 0.25 * both_drawn.item()


@pytest.mark.parametrize("term", ["detail", "detail_excess"])
def test_the_detail_terms_are_measured_and_weighted_in(term):
    model = moving_denoiser_model()
    x = _photo_with_a_textured_half().expand(2, -1, -1, -1).contiguous()
    level, lambdas = torch.tensor([0, 1]), torch.ones(model.n_levels)
    results = {}
    for weight in (0.0, 2.0):
        torch.manual_seed(0)
        loss, m = generative_objective(model, **{term: weight}).generator_loss(model, x, level, lambdas)
        results[weight] = (loss.item(), m[term].item())
    (plain, measured), (weighted, measured_again) = results[0.0], results[2.0]
    assert measured == pytest.approx(measured_again) and measured > 0
    assert weighted == pytest.approx(plain + 2.0 * measured, rel=1e-4)
    assert DETAIL_WINDOW == 8


@pytest.mark.parametrize("term", ["detail", "detail_excess"])
def test_the_detail_terms_are_refused_for_the_latent_family_and_below_zero(term):
    raw = yaml.safe_load(open(ROOT / "configs" / "tiny_latent.yaml"))
    decoder = next(stage for stage in raw["stages"] if stage.get("objective", stage["name"]) == "decoder")
    decoder["loss_weights"] = {**decoder.get("loss_weights", {}), term: 0.5}
    assert f"loss weight '{term}' is a non-negative weight for the pixel family only" in _error(raw)
    raw = yaml.safe_load(open(ROOT / "configs" / "pixel.yaml"))
    stage = next(s for s in raw["stages"] if s.get("objective", s["name"]) == "decoder")
    stage["loss_weights"] = {**stage.get("loss_weights", {}), term: -1.0}
    assert f"loss weight '{term}' is a non-negative weight" in _error(raw)
