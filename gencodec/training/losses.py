"""Training losses, in one place: rate, distortion, perceptual, adversarial and diffusion terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..constants import DETAIL_FLOOR, DETAIL_WINDOW, LUMA


def bits_per_pixel(bits: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """Per-image rate (N,) in bits -> bits per pixel (N,)."""
    return bits / num_pixels


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error (N,) on [0, 1] images."""
    return (x_hat - x).pow(2).flatten(1).mean(1)


def thumbnail_mse(a: torch.Tensor, b: torch.Tensor, factor: int) -> torch.Tensor:
    """Per-image MSE (N,) of the two images area-downsampled by `factor` (their layout and colours).

    Blind to detail finer than `factor` pixels: it ties the low frequencies of a
    generated image to a reference and leaves the generator free above them.
    """
    if factor > 1:
        a, b = F.avg_pool2d(a, factor), F.avg_pool2d(b, factor)
    return mse(a, b)


def periodic_mse(a: torch.Tensor, b: torch.Tensor, period: int, window: int) -> torch.Tensor:
    """Per-image MSE (N,) of the two images' period-`period` components, measured in windows.

    In each `window` x `window` pixel window, each of the period^2 pixel phases
    (row mod period, column mod period) has a mean; those means minus their
    average are the window's part that repeats every `period` pixels. A
    generator that works on space-to-depth folds of `period` pixels (or is
    judged by LPIPS's stride-4 AlexNet) can draw a mesh there that LPIPS pays
    little for; this term ties that part to the photo's, where natural images
    have almost none.
    """
    # Small crops get one window each.
    cells = max(1, min(window, a.shape[-2], a.shape[-1]) // period)

    def phase_deviation(x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        folded = F.pixel_unshuffle(x, period)                      # (N, C * p^2, H/p, W/p)
        means = F.avg_pool2d(folded, cells)                        # per window and phase
        means = means.reshape(n, c, period * period, *means.shape[-2:])
        return means - means.mean(dim=2, keepdim=True)
    return mse(phase_deviation(a), phase_deviation(b))


def local_detail(x: torch.Tensor, window: int) -> torch.Tensor:
    """Fine-detail energy (N, 1, H/window, W/window) of [0, 1] images: the mean square of the luma's
    high-pass (luma minus its 5x5 box blur) in each `window` x `window` pixel window."""
    weights = x.new_tensor(LUMA).reshape(1, 3, 1, 1)
    luma = (x * weights).sum(1, keepdim=True)
    blurred = F.avg_pool2d(F.pad(luma, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    return F.avg_pool2d((luma - blurred).pow(2), window)


def detail_log_l1(a: torch.Tensor, b: torch.Tensor, window: int = DETAIL_WINDOW, floor: float = DETAIL_FLOOR,
                  one_sided: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean (N,) over windows of |log(detail of a) - log(detail of b)|, detail as local_detail.

    LPIPS normalises its features at every position, so where the photo is
    smooth (a blurred background, a sky) it pays about as much for a faint
    grain as for a strong hatching, and a generator trained on it draws
    texture everywhere. On a log scale, texture three times as strong as the
    photo's costs as much in a smooth window as in a busy one. `floor` (one
    8-bit level squared) is the photo's own grain: below it nothing is paid.
    With `one_sided`, also the mean of the excess alone (where a has more
    detail than b; what was invented), as a second (N,) tensor.
    """
    log_ratio = torch.log(local_detail(a, window) + floor) - torch.log(local_detail(b, window) + floor)
    both = log_ratio.abs().flatten(1).mean(1)
    return (both, log_ratio.clamp(min=0).flatten(1).mean(1)) if one_sided else both


def random_offset_crop(a: torch.Tensor, b: torch.Tensor, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images cut by one random offset of 0..shift-1 pixels per side (unchanged for shift <= 1).

    LPIPS's AlexNet starts with a stride-4 convolution: on a fixed pixel grid
    it sees a period-4 pattern at one phase only, and a generator learns which
    phase it overlooks. A random offset per step takes that away.
    """
    if shift <= 1:
        return a, b
    dy, dx = (int(v) for v in torch.randint(0, shift, (2,)))
    height, width = a.shape[-2] - shift + 1, a.shape[-1] - shift + 1
    return (a[..., dy:dy + height, dx:dx + width], b[..., dy:dy + height, dx:dx + width])


def rate_distortion(bpp: torch.Tensor, distortion: torch.Tensor, lmbda: torch.Tensor,
                    scale: float = 255.0 ** 2) -> torch.Tensor:
    """Mean over the batch of bpp + lambda * scale * MSE, each image with its level's lambda.

    The default scale 255^2 puts lambda on the usual 8-bit scale for images
    (as in CompressAI), so published lambda ladders carry over; the latent
    family weighs its latent's MSE with scale 1 (CodecModel.distortion_scale).
    """
    return (bpp + lmbda * scale * distortion).mean()


# --- perceptual -------------------------------------------------------------

def lpips_distance(lpips_net: torch.nn.Module, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image LPIPS (N,) between [0, 1] images.

    LPIPS expects [-1, 1]; mapping here keeps the rest of training in [0, 1].
    Use a net from ``gencodec.evaluation.perceptual.load_lpips``: its normalisation keeps
    gradients finite where features vanish.
    """
    return lpips_net(x_hat * 2 - 1, x * 2 - 1).reshape(x.shape[0])


# --- adversarial ------------------------------------------------------------
# Logits come from a discriminator (any shape, e.g. one per patch); every loss
# is a mean over all of them, so it does not depend on the patch count.

def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: zero once real logits >= 1 and fake <= -1, so D stops
    pushing on patches it already classifies with margin (steadier than the log loss)."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge GAN: raise the discriminator's logits on fakes."""
    return -fake_logits.mean()


def nonsaturating_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator log loss (BCE on logits), as softplus for numerical stability:
    -log sigmoid(real) - log(1 - sigmoid(fake))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def nonsaturating_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator non-saturating loss -log sigmoid(fake): unlike log(1 - sigmoid(fake)) its
    gradient stays large while the discriminator easily rejects the fakes (early training)."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1: mean over images of ||d sum(logits) / d real_image||^2 (Mescheder et al. 2018).

    Penalising D's slope on real data keeps it from growing sharp spikes there,
    which is what makes GAN training oscillate. Multiply by gamma / 2 in the
    caller. `real_images` must have had requires_grad set before D saw them;
    the graph is kept (create_graph) so the penalty itself trains D. A squared
    norm, no sqrt, so it is smooth at zero gradient; a D that ignores the
    images gives exactly 0.
    """
    if not real_images.requires_grad or not real_logits.requires_grad:
        raise ValueError("r1_penalty needs real_images.requires_grad_() set before the discriminator's forward")
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True, allow_unused=True)
    if grad is None:  # the logits do not depend on the images at all
        return real_logits.sum() * 0.0
    penalty = grad.pow(2).flatten(1).sum(1).mean()
    if not penalty.requires_grad:  # D's slope does not depend on its parameters: keep it backward-able
        penalty = penalty + real_logits.sum() * 0.0
    return penalty


# --- diffusion decoder ------------------------------------------------------

def diffusion_loss(prediction: torch.Tensor, target: torch.Tensor,
                   weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error between the denoiser's prediction and its target (noise, x0 or v).

    `weight` (N,) scales each sample's MSE (e.g. min-SNR weighting per timestep)
    before the batch mean, so a weight of 1 for all gives the plain MSE.
    """
    per_sample = (prediction.float() - target.float()).pow(2).flatten(1).mean(1)
    if weight is None:
        return per_sample.mean()
    weight = torch.as_tensor(weight, dtype=per_sample.dtype, device=per_sample.device)
    if weight.numel() != per_sample.numel():
        raise ValueError(f"diffusion_loss weight has {weight.numel()} values for {per_sample.numel()} samples")
    return (per_sample * weight.reshape(per_sample.shape)).mean()
