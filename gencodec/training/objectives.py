"""What each training stage minimises, as functions of a model and a batch.

Kept in the package (not in train/) so the training script and the demo's
on-the-spot fit share one definition.

    codec    rate + lambda(level) * scale * MSE(x_bar, x)             (codec pretraining; the latent
             family may add the pixel MSE of a rendered crop)
    decoder  diffusion + LPIPS + adversarial on the denoiser's x0       (codec frozen; the base
             synthesis G frozen too, or trained with them and a base MSE term)
    joint    both of the above, every network trained                   (joint fine-tuning)
    distill  the latent family's fast autoencoder against TAEF2 itself  (DistillObjective)

Every term but LPIPS lives in the model's working space (CodecModel): the
image for the pixel family, the autoencoder's latent for the latent family.
There the adversarial term judges latents too, and LPIPS sees a pixel crop
rendered through the frozen autoencoder decoder (`Space`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..constants import DETAIL_WINDOW  # the detail term sees the evaluation's windows
from ..constants import THUMBNAIL  # the thumbnail terms see the evaluation's thumbnail
from ..evaluation.metrics import psnr_from_mse
from ..model import CodecModel
from . import losses
from .noise import TrainingNoise
from .rung_inputs import RungInputs, keep_low_frequencies

STAGES = ("codec", "decoder", "joint", "distill")


#: The period the periodic term looks at, and its windows in pixels: the pixel family's denoiser folds by 4,
#: and LPIPS's AlexNet has stride 4. 64-pixel windows keep the term to truly repeating patterns.
PERIODIC = 4
PERIODIC_WINDOW = 64


@dataclass
class LossWeights:
    """Weights of the generative decoder's terms (the codec's rate trade-off is the lambda ladder)."""

    diffusion: float = 1.0     # MSE of the x0 prediction of the folded, scaled residual
    lpips: float = 1.0
    adversarial: float = 0.05  # generator side of the GAN loss
    r1: float = 0.0            # R1 gamma; 0 disables the penalty
    base: float = 0.0          # MSE of the base reconstruction x_bar, when a decoder stage trains G:
                               # it keeps realism 0 the distortion-optimal picture
    consistency: float = 0.0   # x 255^2 x MSE between the THUMBNAIL-downsampled x_hat and x_bar, in pixels:
                               # realism 1 may add detail but not move what the file determines
                               # (layout, colours); LPIPS and the GAN alone pay little for moving them
    periodic: float = 0.0      # x 255^2 x periodic_mse of x_hat and the photo (period PERIODIC, windows of
                               # PERIODIC_WINDOW pixels): no mesh at the fold's period. Pixel family only
    lpips_shift: int = 0       # LPIPS on both images cut by a random 0..n-1 pixel offset (losses.random_offset_crop)
    detail: float = 0.0        # x losses.detail_log_l1 of x_hat and the photo: texture as strong as the photo's,
                               # window by window, none drawn on smooth skies and backgrounds. Pixel family only
    detail_excess: float = 0.0  # the same, paid only where x_hat's detail exceeds the photo's
    gan: str = "hinge"         # or "nonsaturating"


@dataclass
class Space:
    """The model's working space as the objectives see it (CodecModel's attributes, read once).

    scale: image pixels per position per side; distortion_scale: the MSE's
    weight in rate-distortion terms; render: working space -> image (None for
    the pixel family, which works on the image); render_crop: the side in
    pixels of the crop rendered for LPIPS (None: all of it).
    """

    scale: int = 1
    distortion_scale: float = 255.0 ** 2
    render: Callable[[torch.Tensor], torch.Tensor] | None = None
    render_crop: int | None = None

    @classmethod
    def of(cls, model, render_crop: int | None = None) -> "Space":
        if model.space_scale == 1:
            return cls()
        return cls(model.space_scale, model.distortion_scale, model.render, render_crop)

    def pixels(self, x: torch.Tensor) -> int:
        """Image pixels of one sample of x (N, C, h, w) in the working space."""
        return x.shape[-2] * x.shape[-1] * self.scale ** 2

    def to_image(self, s: torch.Tensor, image: torch.Tensor, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(rendered s, the matching crop of image): the same aligned random crop of both, at most render_crop px."""
        if self.render is None:
            return s, image
        s, image = self.crop(s, image, generator)
        return self.render(s), image

    def crop(self, s: torch.Tensor, image: torch.Tensor, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The same aligned random crop of s and of its image, at most render_crop px a side."""
        cells = s.shape[-1] if self.render_crop is None else min(self.render_crop // self.scale, s.shape[-1])
        rows = min(cells, s.shape[-2])
        top = int(torch.randint(0, s.shape[-2] - rows + 1, (1,), generator=generator))
        left = int(torch.randint(0, s.shape[-1] - cells + 1, (1,), generator=generator))
        f = self.scale
        return (s[..., top:top + rows, left:left + cells],
                image[..., top * f:(top + rows) * f, left * f:(left + cells) * f])


def random_levels(batch_size: int, n_levels: int, device, generator: torch.Generator | None = None,
                  levels: list[int] | None = None) -> torch.Tensor:
    """One rate level per image, uniform over the ladder (or over `levels`), so one model learns them all."""
    if levels is None:
        return torch.randint(0, n_levels, (batch_size,), device=device, generator=generator)
    pick = torch.randint(0, len(levels), (batch_size,), device=device, generator=generator)
    return torch.tensor(levels, device=device)[pick]


def _psnr(distortion: torch.Tensor) -> torch.Tensor:
    """Mean PSNR of per-image MSEs on images in [0, 1]."""
    return psnr_from_mse(distortion, peak=1.0).mean()


def codec_objective(model: CodecModel, x: torch.Tensor, level: torch.Tensor,
                    lambdas: torch.Tensor, space: Space = Space(), image: torch.Tensor | None = None,
                    pixel_distortion: float = 0.0, thumb_distortion: float = 0.0
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Stage 1, codec pretraining: rate + lambda(level) * MSE of the base reconstruction (in the working space).

    With `pixel_distortion` (the latent family) the distortion also counts, at that weight, the pixel MSE
    of a crop of x_bar rendered by the frozen decoder against the same crop of `image`: a latent's MSE
    weighs every channel alike, while the decoder does not, and the mean latent of a blurred region
    does not render as that region blurred.

    With `thumb_distortion` (the pixel family) the distortion also counts, at that weight, the MSE of the
    THUMBNAIL-downsampled x_bar against the downsampled image: it moves bits to the layout and colours,
    which a viewer (and the thumb-PSNR) sees first and a plain MSE weighs no more than fine detail.
    """
    out = model(x, level)
    num_pixels = space.pixels(x)
    bpp = losses.bits_per_pixel(out["bits"], num_pixels)
    plain_mse = losses.mse(out["x_bar"].float(), x.float())
    distortion = plain_mse
    metrics = {"mse": plain_mse.mean().detach()}
    if pixel_distortion:
        if image is None or space.render is None:
            raise ValueError("pixel_distortion needs a rendering working space and the batch's images")
        rendered, target = space.to_image(out["x_bar"].float(), image.float())
        pixel_mse = losses.mse(rendered, target)
        distortion = distortion + pixel_distortion * pixel_mse
        metrics["psnr"] = _psnr(pixel_mse.detach())
    if thumb_distortion:
        if space.render is not None:
            raise ValueError("thumb_distortion applies to the pixel family's image space")
        thumb_mse = losses.thumbnail_mse(out["x_bar"].float(), x.float(), THUMBNAIL)
        distortion = distortion + thumb_distortion * thumb_mse
        metrics["psnr_thumb"] = _psnr(thumb_mse.detach())
    loss = losses.rate_distortion(bpp.float(), distortion, lambdas[level], space.distortion_scale)
    metrics = {"loss": loss.detach(), "bpp": bpp.mean().detach(), **metrics,
               **({"psnr": _psnr(plain_mse).detach()} if space.render is None else {}),
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
                 train_codec: bool, final_step_fraction: float = 0.0, train_synthesis: bool | None = None,
                 space: Space = Space()):
        self.space = space
        self.lpips = lpips_net
        self.discriminator = discriminator
        self.weights = weights
        self.train_codec = train_codec
        self.train_synthesis = train_codec if train_synthesis is None else train_synthesis
        self.noise = TrainingNoise(final_step_fraction)
        self._last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def generator_loss(self, model, x: torch.Tensor, level: torch.Tensor, lambdas: torch.Tensor,
                       image: torch.Tensor | None = None, rungs: RungInputs | None = None,
                       rung_photos: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x in the model's working space; `image` the pixels it came from (the latent family's LPIPS needs
        them). `model` may be wrapped for distributed training: only its forward is called.

        `rungs` (the pixel family): more samples, the pictures a decoder sees at downscaled rungs of
        `rung_photos` (gencodec.training.rung_inputs), appended to the batch: the denoiser draws on their
        codes towards the photos, and its picture has its low frequencies replaced as decoding does."""
        w, space = self.weights, self.space
        target, n_rungs = x, 0
        if rungs is not None:
            if space.render is not None or rung_photos is None:
                raise ValueError("rung samples are the pixel family's, and need their photos")
            n_rungs = rung_photos.shape[0]
            x, target = torch.cat([x, rungs.pictures]), torch.cat([x, rung_photos])
            level = torch.cat([level, rungs.levels])
        extra = {"target": target} if n_rungs else {}
        out = model(x, level, noise=self.noise, train_codec=self.train_codec, train_synthesis=self.train_synthesis,
                    **extra)
        y_hat, x_bar, x_hat, pred, r0 = out["y_hat"], out["x_bar"], out["x_hat"], out["pred"], out["r0"]
        if n_rungs:
            kept = keep_low_frequencies(x_hat[-n_rungs:].float(), rungs.low_pass.float()).to(x_hat.dtype)
            x_hat = torch.cat([x_hat[:-n_rungs], kept])
        x = target  # from here on, x is what every term compares with
        diffusion = losses.diffusion_loss(pred.float(), r0.float())
        rendered = target = rendered_base = None
        if space.render is None:
            rendered, target, rendered_base = x_hat.float(), x.float(), x_bar.detach().float()
        elif w.lpips or w.consistency:  # else not rendered at all: rendering costs more than the rest of the step
            if image is None:
                raise ValueError("the latent family's LPIPS and consistency terms need the batch's images")
            rendered, target, rendered_base = self._render_crop(x_hat, x_bar, image, need_base=bool(w.consistency))
        perceptual = (losses.lpips_distance(self.lpips, *losses.random_offset_crop(rendered, target, w.lpips_shift)
                                            ).mean() if rendered is not None else diffusion.new_zeros(()))
        fake_logits = self.discriminator(x_hat.float(), y_hat.float())
        adversarial = (losses.hinge_g_loss if w.gan == "hinge" else losses.nonsaturating_g_loss)(fake_logits)
        loss = w.diffusion * diffusion + w.lpips * perceptual + w.adversarial * adversarial
        metrics = {"diffusion": diffusion.detach(), "lpips": perceptual.detach(), "g_adv": adversarial.detach()}
        if rendered_base is not None:
            # Always measured (a cheap pool), weighted in only when asked for.
            drift = losses.thumbnail_mse(rendered, rendered_base, THUMBNAIL)
            loss = loss + w.consistency * 255.0 ** 2 * drift.mean()
            metrics["psnr_thumb_drift"] = _psnr(drift.detach())
        if space.render is None:
            # Always measured, weighted in only when asked for. Pixel family only: the latent family works on
            # latents, and its mesh is drawn by the frozen autoencoder decoder, which no decoder stage trains.
            periodic = losses.periodic_mse(x_hat.float(), x.float(), PERIODIC, PERIODIC_WINDOW)
            loss = loss + w.periodic * 255.0 ** 2 * periodic.mean()
            metrics["periodic"] = (255.0 ** 2 * periodic.mean()).detach()
            detail, excess = losses.detail_log_l1(x_hat.float(), x.float(), DETAIL_WINDOW, one_sided=True)
            loss = loss + w.detail * detail.mean() + w.detail_excess * excess.mean()
            metrics["detail"], metrics["detail_excess"] = detail.mean().detach(), excess.mean().detach()
        if rendered is not None:
            metrics["psnr"] = _psnr(losses.mse(rendered.detach().clamp(0, 1), target)).detach()
        if self.train_synthesis and not self.train_codec:
            base = losses.mse(x_bar.float(), x.float())
            loss = loss + w.base * base.mean()
            metrics["psnr_base" if space.render is None else "mse_base"] = (
                _psnr(base) if space.render is None else base.mean()).detach()
        if self.train_codec:
            bpp = losses.bits_per_pixel(out["bits"], space.pixels(x))
            base = losses.mse(x_bar.float(), x.float())
            # Rate and the base reconstruction's distortion keep realism 0 meaningful.
            loss = loss + losses.rate_distortion(bpp.float(), base, lambdas[level], space.distortion_scale)
            metrics["bpp"] = bpp.mean().detach()
            metrics["psnr_base" if space.render is None else "mse_base"] = (
                _psnr(base) if space.render is None else base.mean()).detach()
        metrics["loss"] = loss.detach()
        self._last = (x.detach(), x_hat.detach(), y_hat.detach())
        return loss, metrics

    def _render_crop(self, x_hat: torch.Tensor, x_bar: torch.Tensor, image: torch.Tensor,
                     need_base: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x_hat rendered, image, x_bar rendered or None) on one aligned random crop (the latent family)."""
        channels = x_hat.shape[1]
        both, target = self.space.crop(torch.cat([x_hat.float(), x_bar.detach().float()], 1), image.float())
        rendered = self.space.render(both[:, :channels])
        base = self.space.render(both[:, channels:]).detach() if need_base else None
        return rendered, target, base

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


class DistillObjective:
    """A `distill` stage: the latent family's fast autoencoder learns to do what TAEF2 does.

    On the same aligned random crop of a latent and its image (data.render_crop
    px), the fast decoder's rendering of the latent is pulled to the frozen TAEF2
    decoder's (10 x pixel MSE + `weights.lpips` x LPIPS), and the fast encoder's
    latent of the image crop to TAEF2's encoder's (latent MSE). The teachers are
    the pretrained networks themselves, so every latent the codec was trained on
    keeps its meaning. The two students share no parameter: each term trains one.
    """

    PIXEL_WEIGHT = 10.0  # the pixel MSE (about 1e-3 at a close match) next to LPIPS (about 0.05)

    def __init__(self, teacher_encoder: torch.nn.Module, teacher_decoder: torch.nn.Module,
                 lpips_net: torch.nn.Module, weights: LossWeights, space: Space):
        self.teacher_encoder, self.teacher_decoder = teacher_encoder, teacher_decoder
        self.lpips, self.weights, self.space = lpips_net, weights, space

    def generator_loss(self, model, x: torch.Tensor, level: torch.Tensor, lambdas: torch.Tensor,
                       image: torch.Tensor | None = None, rungs: RungInputs | None = None,
                       rung_photos: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x: latents, image: their images. (level, lambdas, rungs and rung_photos: unused, the signature of
        the other stages; a distill stage has no rung samples, which the config refuses.)"""
        if rungs is not None:
            raise ValueError("a distill stage trains on no rung samples")
        if image is None:
            raise ValueError("a distill stage needs the batch's images")
        latent, image = self.space.crop(x.float(), image.float())
        out = model(latent, image=image)  # the forward, so that distributed training synchronises gradients
        with torch.no_grad():
            rendered, encoded = self.teacher_decoder(latent), self.teacher_encoder(image)
        pixel = losses.mse(out["rendered"].float(), rendered).mean()
        perceptual = losses.lpips_distance(self.lpips, out["rendered"].float(), rendered).mean()
        encoder = losses.mse(out["latent"].float(), encoded).mean()
        loss = self.PIXEL_WEIGHT * pixel + self.weights.lpips * perceptual + encoder
        return loss, {"loss": loss.detach(), "psnr_decoder": _psnr(pixel.detach().unsqueeze(0)),
                      "lpips_decoder": perceptual.detach(), "mse_encoder": encoder.detach()}
