"""The diffusion settings of a model, the noise schedule they describe, and the few-step sampler.

The denoiser predicts the clean sample (x0-parameterisation): every step
already yields a full image, so a handful of steps is enough, and perceptual
and adversarial losses apply to that prediction directly. Betas are rescaled
to zero terminal SNR and timesteps are spaced from the end ("trailing"), so
the first sampling step starts from pure noise, as in training.

Every setting lives in the model's config (`diffusion`), written out in full
when a model is made, so it is saved with the model and covered by its
fingerprint: a later change of the defaults here cannot change what an
existing model decodes to.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable

import numpy as np
import torch

from .constants import SCHEDULERS

# The side of the squares a tiled decode's noise is drawn in (residual positions; block_noise).
NOISE_BLOCK = 64

# One step: the denoiser's LPIPS and adversarial losses train its x0 prediction
# from a noised *true* residual, never from its own earlier predictions, and each
# further step moves the result away from the photo. Mean LPIPS on 8 Kodak photos
# at level 4, 1 / 2 / 4 steps: 0.515 / 0.550 / 0.598 with a model trained partly for
# one step (0.560 / 0.578 / 0.614, and 0.662 at 8, with one that was not; the model
# card of the pixel model has its figures). More steps remain an option (--steps).
DEFAULT_DIFFUSION = {
    # The training noise schedule (diffusers' scheduler arguments).
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "prediction_type": "sample",
    "timestep_spacing": "trailing",
    "rescale_betas_zero_snr": True,
    # Decoding: the sampler and step count used when the caller names none.
    "sampler": "ddim",
    "steps": 1,
    # Each sampler's own arguments, so that all of them end on the clean sample.
    "sampler_options": {
        "ddim": {"clip_sample": False, "set_alpha_to_one": True},
        "dpmsolver": {"algorithm_type": "dpmsolver++", "final_sigmas_type": "zero"},
        "euler": {"final_sigmas_type": "zero"},
    },
}

#: The scheduler class of each sampler; only the one in use is imported
#: (DPM-Solver and Euler pull in scipy.stats, over a second of start-up).
_SCHEDULER_CLASSES = {
    "ddim": ("diffusers.schedulers.scheduling_ddim", "DDIMScheduler"),
    "dpmsolver": ("diffusers.schedulers.scheduling_dpmsolver_multistep", "DPMSolverMultistepScheduler"),
    "euler": ("diffusers.schedulers.scheduling_euler_discrete", "EulerDiscreteScheduler"),
}
_SCHEDULE_KEYS = ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type",
                  "timestep_spacing", "rescale_betas_zero_snr")


def diffusion_settings(given: dict | None = None) -> dict:
    """The full settings: DEFAULT_DIFFUSION updated with `given` (sampler options merged per sampler).

    Raises ValueError on an unknown key or sampler, or a step count below 1.
    """
    settings = copy.deepcopy(DEFAULT_DIFFUSION)
    given = dict(given or {})
    unknown = sorted(set(given) - set(settings))
    if unknown:
        raise ValueError(f"unknown diffusion setting '{unknown[0]}' (known: {', '.join(settings)})")
    options = given.pop("sampler_options", None) or {}
    settings.update(given)
    for kind, extra in options.items():
        if kind not in SCHEDULERS:
            raise ValueError(f"unknown sampler '{kind}' in sampler_options (choose from {', '.join(SCHEDULERS)})")
        settings["sampler_options"][kind].update(extra)
    if settings["sampler"] not in SCHEDULERS:
        raise ValueError(f"unknown sampler '{settings['sampler']}' (choose from {', '.join(SCHEDULERS)})")
    if isinstance(settings["steps"], bool) or not isinstance(settings["steps"], int) or settings["steps"] < 1:
        raise ValueError(f"diffusion steps must be an integer of at least 1, got {settings['steps']!r}")
    return settings


def make_scheduler(settings: dict, kind: str | None = None):
    """A diffusers scheduler for `settings` (see diffusion_settings); `kind` defaults to their sampler."""
    kind = settings["sampler"] if kind is None else kind
    if kind not in _SCHEDULER_CLASSES:
        raise ValueError(f"unknown scheduler '{kind}' (choose from {', '.join(SCHEDULERS)})")
    module, name = _SCHEDULER_CLASSES[kind]
    scheduler_class = getattr(importlib.import_module(module), name)
    schedule = {key: settings[key] for key in _SCHEDULE_KEYS}
    return scheduler_class(**schedule, **settings["sampler_options"].get(kind, {}))


@torch.no_grad()
def block_noise(seed: int, channels: int, top: int, left: int, height: int, width: int,
                block: int = NOISE_BLOCK) -> torch.Tensor:
    """Standard normal noise (1, channels, height, width) at (top, left) of an unbounded field that is
    drawn in `block` x `block` squares, each from its own generator seeded by (seed, row, column).

    So a tile of a large image gets its noise without the whole field being drawn: any two tiles agree
    where they overlap, whatever the tiling.
    """
    noise = torch.empty(1, channels, height, width)
    for row in range(top // block, (top + height - 1) // block + 1):
        for col in range(left // block, (left + width - 1) // block + 1):
            state = np.random.SeedSequence([seed, row, col]).generate_state(2, dtype=np.uint64)[0]
            square = torch.randn(channels, block, block, generator=torch.Generator().manual_seed(int(state)))
            y0, x0 = max(top, row * block), max(left, col * block)
            y1, x1 = min(top + height, (row + 1) * block), min(left + width, (col + 1) * block)
            noise[0, :, y0 - top: y1 - top, x0 - left: x1 - left] = square[:, y0 - row * block: y1 - row * block,
                                                                            x0 - col * block: x1 - col * block]
    return noise


def sample(denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: tuple[int, ...],
           settings: dict, steps: int | None = None, seed: int = 0, kind: str | None = None,
           device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
           noise: torch.Tensor | None = None) -> torch.Tensor:
    """Run `steps` denoising steps from seeded noise; returns the clean sample.

    `denoise(x_t, t)` predicts the clean sample. `steps` and `kind` default to
    the settings' own. The noise is drawn on the CPU from `seed`, so a seed
    means the same starting point on every device; or it is given (`noise`,
    standard normal, of `shape`: a tile's share of block_noise).
    """
    steps = settings["steps"] if steps is None else steps
    if steps < 1:
        raise ValueError("steps must be at least 1")
    scheduler = make_scheduler(settings, kind)
    scheduler.set_timesteps(steps, device=device)
    if noise is None:
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    elif tuple(noise.shape) != tuple(shape):
        raise ValueError(f"noise of shape {tuple(noise.shape)} for a sample of shape {tuple(shape)}")
    x = noise.to(device=device, dtype=dtype) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, t)
        x0 = denoise(model_input, t.expand(shape[0]).to(device))
        x = scheduler.step(x0, t, x).prev_sample
    return x
