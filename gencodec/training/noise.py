"""Noising the clean target at a random timestep, for the diffusion loss."""

from __future__ import annotations

import torch

from ..diffusion import make_scheduler


class TrainingNoise:
    """Draws a timestep per sample and noises the clean target, for the diffusion loss.

    Timesteps are uniform, except that a `final_step_fraction` of the samples
    take the last timestep, where the input is pure noise (zero terminal SNR).
    That is the only input one-step decoding ever sees, and the perceptual and
    adversarial losses on the x0 prediction matter most there; uniform
    timesteps put only 0.1% of the samples on it (and about 10% near it).

    The schedule is the model's own (its config's diffusion settings), given
    with each call by the model's forward.
    """

    def __init__(self, final_step_fraction: float = 0.0):
        if not 0.0 <= final_step_fraction <= 1.0:
            raise ValueError(f"final_step_fraction must be from 0 to 1, got {final_step_fraction}")
        self.final_step_fraction = float(final_step_fraction)
        self._schedule: tuple[dict, object] | None = None

    def _scheduler(self, settings: dict):
        if self._schedule is None or self._schedule[0] != settings:
            self._schedule = (settings, make_scheduler(settings, "ddim"))
        return self._schedule[1]

    def __call__(self, x0: torch.Tensor, settings: dict, generator: torch.Generator | None = None):
        """Noised x0 and the timesteps drawn, under the schedule of `settings` (see gencodec.diffusion)."""
        scheduler = self._scheduler(settings)
        n, last = x0.shape[0], settings["num_train_timesteps"] - 1
        t = torch.randint(0, last + 1, (n,), device=x0.device, generator=generator)
        if self.final_step_fraction > 0:
            final = torch.rand(n, device=x0.device, generator=generator) < self.final_step_fraction
            t = torch.where(final, torch.full_like(t, last), t)
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        return scheduler.add_noise(x0, noise, t), t
