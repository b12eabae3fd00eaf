"""Noise schedule, training target and the few-step sampler, over diffusers' schedulers.

The denoiser predicts the clean sample (x0-parameterisation): every step
already yields a full image, so a handful of steps is enough, and perceptual
and adversarial losses apply to that prediction directly. Betas are rescaled
to zero terminal SNR and timesteps are spaced from the end ("trailing"), so
the first sampling step starts from pure noise, as in training.
"""

from __future__ import annotations

from typing import Callable

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

SCHEDULERS = ("ddim", "dpmsolver", "euler")
DEFAULT_SCHEDULER = "ddim"
# One step: the denoiser's LPIPS and adversarial losses train its x0 prediction
# from a noised *true* residual, never from its own earlier predictions, and each
# further step moves the result away from the photo. Mean LPIPS on 8 Kodak photos
# at level 4, 1 / 2 / 4 steps: 0.515 / 0.550 / 0.598 with a model trained partly for
# one step (0.560 / 0.578 / 0.614, and 0.662 at 8, with one that was not; the model
# card has the shipped model's figures). More steps remain an option (--steps).
DEFAULT_STEPS = 1
NUM_TRAIN_TIMESTEPS = 1000


def make_scheduler(kind: str = DEFAULT_SCHEDULER):
    common = dict(num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule="linear", prediction_type="sample",
                  timestep_spacing="trailing", rescale_betas_zero_snr=True)
    if kind == "ddim":
        return DDIMScheduler(clip_sample=False, set_alpha_to_one=True, **common)
    if kind == "dpmsolver":
        return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", final_sigmas_type="zero", **common)
    if kind == "euler":
        return EulerDiscreteScheduler(final_sigmas_type="zero", **common)
    raise ValueError(f"unknown scheduler '{kind}' (choose from {', '.join(SCHEDULERS)})")


@torch.no_grad()
def sample(denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: tuple[int, ...],
           steps: int = DEFAULT_STEPS, seed: int = 0, kind: str = DEFAULT_SCHEDULER,
           device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Run `steps` denoising steps from seeded noise; returns the clean sample.

    `denoise(x_t, t)` predicts the clean sample. The noise is drawn on the CPU
    from `seed`, so a seed means the same starting point on every device.
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    scheduler = make_scheduler(kind)
    scheduler.set_timesteps(steps, device=device)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator).to(device=device, dtype=dtype) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, t)
        x0 = denoise(model_input, t.expand(shape[0]).to(device))
        x = scheduler.step(x0, t, x).prev_sample
    return x
