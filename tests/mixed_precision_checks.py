"""Checks of bf16 mixed-precision training shared by the CPU tests and the GPU tests (tests/test_gpu.py)."""

from __future__ import annotations

import torch

from gencodec.model import CodecModel


def check_entropy_model_ignores_autocast(model: CodecModel, device: str) -> None:
    """Under bf16 autocast the latent codec computes exactly what it computes without it: float32 rates,
    the integer scale network's indexes, the mean, y^ (in training mode too: the same noise, seeded)."""
    model = model.to(device)
    y = torch.randn(2, model.config.latent_channels, 8, 8, device=device) * 3
    level = torch.tensor([0, model.n_levels - 1], device=device)
    for training in (False, True):
        model.latent_codec.train(training)
        with torch.no_grad():
            torch.manual_seed(0)
            plain = model.latent_codec(y, level)
            torch.manual_seed(0)
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
                mixed = model.latent_codec(y.bfloat16(), level)
        y_as_bf16 = y.bfloat16().float()  # what autocast hands over from a bf16 analysis transform
        torch.manual_seed(0)
        with torch.no_grad():
            expected = model.latent_codec(y_as_bf16, level)
        for key in ("bits", "bits_y", "bits_z", "y_hat"):
            assert mixed[key].dtype == torch.float32, f"{key} is {mixed[key].dtype} under autocast"
            assert torch.equal(mixed[key], expected[key]), f"{key} differs under autocast (training={training})"
        assert plain["bits"].dtype == torch.float32
    model.latent_codec.eval()
    z = torch.randint(-3, 4, (1, model.config.hyper_latent_channels, 4, 4), device=device).float()
    scale_net = model.latent_codec.scale_net
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        mixed = scale_net.indexes(z, 0)
    assert torch.equal(mixed, scale_net.indexes(z, 0))


def check_a_bf16_codec_step(model: CodecModel, device: str, channels_last: bool = False) -> float:
    """One optimizer step of the codec objective under bf16 autocast: a finite float32 loss whose
    gradients reach the entropy model in float32; returns the loss."""
    from gencodec.training.objectives import codec_objective
    from gencodec.training.parameters import trainable_parameters

    model = model.to(device).train()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    params = trainable_parameters(model, "codec")
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    side = model.padding_multiple * 2
    x = torch.rand(2, 3, side, side, device=device).contiguous(memory_format=layout)
    level = torch.tensor([0, model.n_levels - 1], device=device)
    lambdas = torch.full((model.n_levels,), 1e-3, device=device)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        loss, _ = codec_objective(model, x, level, lambdas)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    gains = model.latent_codec.log_gain
    assert gains.grad is not None and gains.grad.dtype == torch.float32 and torch.isfinite(gains.grad).all()
    optimizer.step()
    return loss.item()
