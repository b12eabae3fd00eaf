"""What each training stage minimises, as functions of a model and a batch.

Kept in the package (not in train/) so the training script and the demo's
on-the-spot fit share one definition.

    codec    rate + lambda(level) * 255^2 * MSE(x_bar, x)             (codec pretraining)
    decoder  diffusion + LPIPS + adversarial on the denoiser's x0       (codec frozen; the base
             synthesis G frozen too, or trained with them and a base MSE term)
    joint    both of the above, every network trained                   (joint fine-tuning)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..evaluation.metrics import psnr_from_mse
from ..model import GenCodecModel
from . import losses
from .noise import TrainingNoise

STAGES = ("codec", "decoder", "joint")


@dataclass
class LossWeights:
    """Weights of the generative decoder's terms (the codec's rate trade-off is the lambda ladder)."""

    diffusion: float = 1.0     # MSE of the x0 prediction of the folded, scaled residual
    lpips: float = 1.0
    adversarial: float = 0.05  # generator side of the GAN loss
    r1: float = 0.0            # R1 gamma; 0 disables the penalty
    base: float = 0.0          # MSE of the base reconstruction x_bar, when a decoder stage trains G:
                               # it keeps realism 0 the distortion-optimal picture
    gan: str = "hinge"         # or "nonsaturating"


def random_levels(batch_size: int, n_levels: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """One rate level per image, uniform over the ladder, so one model learns them all."""
    return torch.randint(0, n_levels, (batch_size,), device=device, generator=generator)


def _psnr(distortion: torch.Tensor) -> torch.Tensor:
    """Mean PSNR of per-image MSEs on images in [0, 1]."""
    return psnr_from_mse(distortion, peak=1.0).mean()


def codec_objective(model: GenCodecModel, x: torch.Tensor, level: torch.Tensor,
                    lambdas: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Stage 1, codec pretraining: rate + lambda(level) * MSE of the base reconstruction."""
    out = model(x, level)
    num_pixels = x.shape[-2] * x.shape[-1]
    bpp = losses.bits_per_pixel(out["bits"], num_pixels)
    distortion = losses.mse(out["x_bar"].float(), x.float())
    loss = losses.rate_distortion(bpp.float(), distortion, lambdas[level])
    metrics = {"loss": loss.detach(), "bpp": bpp.mean().detach(), "mse": distortion.mean().detach(),
               "psnr": _psnr(distortion).detach(),
               "bpp_z": losses.bits_per_pixel(out["bits_z"], num_pixels).mean().detach()}
    return loss, metrics


class GenerativeObjective:
    """Stages 2 and 3: the denoiser's losses, with or without the codec's own.

    Holds what these stages need besides the model: the LPIPS network, the
    conditional discriminator and the noise sampler. `generator_loss` gives
    the loss of the model; `discriminator_loss` that of the discriminator,
    on the last batch's real and generated images.
    """

    def __init__(self, lpips_net: torch.nn.Module, discriminator: torch.nn.Module, weights: LossWeights,
                 train_codec: bool, final_step_fraction: float = 0.0, train_synthesis: bool | None = None):
        self.lpips = lpips_net
        self.discriminator = discriminator
        self.weights = weights
        self.train_codec = train_codec
        self.train_synthesis = train_codec if train_synthesis is None else train_synthesis
        self.noise = TrainingNoise(final_step_fraction)
        self._last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def generator_loss(self, model, x: torch.Tensor, level: torch.Tensor,
                       lambdas: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """`model` may be wrapped for distributed training: only its forward is called."""
        w = self.weights
        out = model(x, level, noise=self.noise, train_codec=self.train_codec, train_synthesis=self.train_synthesis)
        y_hat, x_bar, x_hat, pred, r0 = out["y_hat"], out["x_bar"], out["x_hat"], out["pred"], out["r0"]
        diffusion = losses.diffusion_loss(pred.float(), r0.float())
        perceptual = losses.lpips_distance(self.lpips, x_hat.float(), x.float()).mean()
        fake_logits = self.discriminator(x_hat.float(), y_hat.float())
        adversarial = (losses.hinge_g_loss if w.gan == "hinge" else losses.nonsaturating_g_loss)(fake_logits)
        loss = w.diffusion * diffusion + w.lpips * perceptual + w.adversarial * adversarial
        distortion = losses.mse(x_hat.float(), x.float())
        metrics = {"diffusion": diffusion.detach(), "lpips": perceptual.detach(), "g_adv": adversarial.detach(),
                   "psnr": _psnr(distortion).detach()}
        if self.train_synthesis and not self.train_codec:
            base = losses.mse(x_bar.float(), x.float())
            loss = loss + w.base * base.mean()
            metrics["psnr_base"] = _psnr(base).detach()
        if self.train_codec:
            num_pixels = x.shape[-2] * x.shape[-1]
            bpp = losses.bits_per_pixel(out["bits"], num_pixels)
            base = losses.mse(x_bar.float(), x.float())
            # Rate and the base reconstruction's distortion keep realism 0 meaningful.
            loss = loss + losses.rate_distortion(bpp.float(), base, lambdas[level])
            metrics.update(bpp=bpp.mean().detach(), psnr_base=_psnr(base).detach())
        metrics["loss"] = loss.detach()
        self._last = (x.detach(), x_hat.detach(), y_hat.detach())
        return loss, metrics

    def discriminator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, x_hat, y_hat = self._last
        w = self.weights
        real_input = x.float().requires_grad_(w.r1 > 0)
        # One forward over real and fake together: a distributed wrapper expects one per backward.
        logits = self.discriminator(torch.cat([real_input, x_hat.float()]), torch.cat([y_hat, y_hat]).float())
        real, fake = logits.chunk(2)
        d_loss = (losses.hinge_d_loss if w.gan == "hinge" else losses.nonsaturating_d_loss)(real, fake)
        metrics = {"d_loss": d_loss.detach()}
        if w.r1 > 0:
            penalty = losses.r1_penalty(real, real_input)
            d_loss = d_loss + 0.5 * w.r1 * penalty
            metrics["r1"] = penalty.detach()
        return d_loss, metrics
