"""The denoiser's full-resolution refiner: added to a trained model, it changes nothing until trained."""

from __future__ import annotations

import numpy as np
import torch

from gencodec.bitstream import unpack_file
from gencodec.codec import Codec

from .conftest import small_model as _model
from .conftest import smooth_image


def _denoiser_inputs(model, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x_bar = torch.rand(2, 3, 64, 96, generator=g)
    features = torch.randn(2, model.synthesis.feature_channels, 16, 24, generator=g)
    den = model.denoiser
    r_t = torch.randn(2, den.residual_channels, 16, 24, generator=g)
    return x_bar, den.condition(x_bar, features), r_t, torch.tensor([999, 500])


def test_a_refiner_added_to_a_trained_model_changes_nothing_until_trained():
    plain, refined = _model(), _model(refine_channels=8)
    assert refined.load_warm_start(plain.state_dict()) == ["denoiser.refiner"]
    refined.update_tables()
    _, condition, r_t, t = _denoiser_inputs(plain)
    with torch.no_grad():
        assert torch.equal(plain.denoiser(r_t, t, condition), refined.denoiser(r_t, t, condition))
    image = smooth_image(64, 96, seed=2)
    a, b = Codec(plain, device="cpu"), Codec(refined, device="cpu")
    data_a, data_b = a.compress(image, level=1), b.compress(image, level=1)
    assert unpack_file(data_a)[1] == unpack_file(data_b)[1]  # the same payload; the fingerprints differ
    decoded_a = np.asarray(a.decompress(data_a, realism=1.0, seed=3))
    decoded_b = np.asarray(b.decompress(data_b, realism=1.0, seed=3))
    assert np.array_equal(decoded_a, decoded_b)


def test_the_refiner_corrects_the_prediction_at_full_resolution():
    model = _model(refine_channels=8)
    refiner = model.denoiser.refiner
    with torch.no_grad():
        refiner.out.weight.normal_(0, 0.1)
    den = model.denoiser
    x_bar, condition, r_t, t = _denoiser_inputs(model)
    with torch.no_grad():
        total = den(r_t, t, condition)
        unet = den.unet(torch.cat([r_t, condition], 1), t).sample
        # The refiner sees x_bar itself (as the condition holds it, in [-1, 1]) and the unfolded tensors.
        correction = refiner(den.unfold_image(unet), den.unfold_image(r_t), x_bar * 2 - 1)
    assert correction.shape == x_bar.shape
    assert torch.allclose(den.unfold_image(total - unet), correction, atol=1e-6)
    assert correction.abs().mean() > 1e-3


def test_the_refiner_learns():
    """From its zero start only its last layer has a gradient; one step on it lowers the loss, and from
    then on every layer of the refiner learns."""
    model = _model(refine_channels=8)
    refiner = model.denoiser.refiner
    _, condition, r_t, t = _denoiser_inputs(model)

    def loss():
        return model.denoiser(r_t, t, condition).square().mean()

    first = loss()
    first.backward()
    assert refiner.out.weight.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() == 0 for p in refiner.hidden.parameters())  # behind a zero layer
    optimizer = torch.optim.SGD(refiner.parameters(), lr=0.5)
    optimizer.step()
    optimizer.zero_grad()
    second = loss()
    second.backward()
    assert second.item() < first.item()
    for name, p in refiner.named_parameters():
        assert p.grad.abs().sum() > 0, f"refiner.{name} has no gradient"
