"""Encoder search: for each photo, a code that costs fewer bits for as good a picture.

The analysis transform is amortized: one pass guesses y for every photo, and
a small codec trained briefly guesses far from the best code for its own
trade-off (on Kodak, the pixel model's files at a 2x-smaller rung came out
15% smaller and 0.2 dB nearer the photo after 8 steps). So the encoder,
which has the photo, takes a few gradient steps on the quantized residuals
of y to lower its level's training loss, bits + lambda * distortion, for
this one image (content-adaptive optimization: Campos et al. 2019, "Content
Adaptive Optimization for Neural Image Compression"; Yang et al. 2020,
"Improving Inference for Neural Image Compression").

Only the encoder changes. z^ (and with it every scale and mean) is kept as
the analysis made it, the residuals stay integers the same coder codes, and
the decoder never knows: files decode with the same model, and the model's
fingerprint does not change.

The work is bounded by the picture: `SearchSettings.steps_for` gives the
number of steps from the coded pixels (a fixed budget of pixel-steps, with a
cap), so a given photo and level always take the same path, and a large
photo takes none. The settings live beside a model's config in
`encoder.json` (they are the encoder's, not part of the format).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .constants import THUMBNAIL
from .entropy.hyperprior import MAX_RESIDUAL, LatentCode
from .errors import ModelNotFoundError
from .imageio import image_to_tensor, pad_to_multiple

#: The encoder's settings file in a model folder.
ENCODER_NAME = "encoder.json"

#: Pixel-steps per image by default: two steps at 768x512, eight at 384x256, none above 786,432 pixels
#: (about 0.5 s on 2 CPU cores for the pixel model at any size, within the encoder's 1 s). Small
#: pictures are searched as well: on crops of 4 Kodak photos shrunk to 16x16 up to 256x256 (levels 0, 2, 4,
#: 6), the search made the files 12-18% smaller and realism 0 0.06-0.12 dB nearer, for 0.17-0.42 s on one
#: core; an encoder in a hurry over many small pictures passes search_steps=0.
DEFAULT_WORK = 2 * 768 * 512
DEFAULT_MAX_STEPS = 16


@dataclass(frozen=True)
class SearchSettings:
    """`lambdas`: the trade-off each coding level was trained for (loss = bpp + lambda *
    distortion_scale * MSE in the model's working space), one per coding level. `work`: coded
    pixels x steps per image; `max_steps`: the most steps any picture takes. `thumb_weight`: the
    weight of the MSE of the 1/THUMBNAIL area-downsampled pictures beside the MSE, as the codec's
    training weighed it (a codec stage's thumb_distortion): the search then lowers the loss the
    codec was trained on."""

    lambdas: tuple[float, ...]
    work: int = DEFAULT_WORK
    max_steps: int = DEFAULT_MAX_STEPS
    thumb_weight: float = 0.0

    def __post_init__(self):
        if not self.lambdas or not all(np.isfinite(v) and v > 0 for v in self.lambdas):
            raise ValueError(f"search lambdas must be positive numbers, got {list(self.lambdas)}")
        if self.work < 0 or self.max_steps < 0:
            raise ValueError("search work and max_steps must not be negative")
        if not (np.isfinite(self.thumb_weight) and self.thumb_weight >= 0):
            raise ValueError(f"search thumb_weight must be a non-negative number, got {self.thumb_weight}")

    def steps_for(self, coded_pixels: int) -> int:
        """The steps a picture of `coded_pixels` takes: the work budget over its size, capped."""
        return min(self.max_steps, self.work // max(1, int(coded_pixels)))


def read_settings(folder: str | os.PathLike, n_levels: int) -> SearchSettings | None:
    """A model folder's encoder settings, or None where it has none (the encoder does not search)."""
    path = Path(folder) / ENCODER_NAME
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        settings = SearchSettings(lambdas=tuple(float(v) for v in raw["search"]["lambdas"]),
                                  work=int(raw["search"].get("work", DEFAULT_WORK)),
                                  max_steps=int(raw["search"].get("max_steps", DEFAULT_MAX_STEPS)),
                                  thumb_weight=float(raw["search"].get("thumb_weight", 0.0)))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotFoundError(f"cannot read '{path}': {' '.join(str(exc).split())}") from exc
    if len(settings.lambdas) != n_levels:
        raise ModelNotFoundError(f"'{path}' has {len(settings.lambdas)} search lambdas for a model of "
                                 f"{n_levels} coding levels")
    return settings


def write_settings(folder: str | os.PathLike, settings: SearchSettings) -> None:
    search = asdict(settings)
    search["lambdas"] = list(settings.lambdas)
    if not settings.thumb_weight:
        del search["thumb_weight"]  # files of models without it stay as they were
    (Path(folder) / ENCODER_NAME).write_text(json.dumps({"search": search}, indent=2) + "\n")


def step_size(steps: int) -> float:
    """Adam's step for a search of `steps` steps, in quantization bins: larger when there are few (its
    first steps move every residual by about this much), measured on Kodak at 2, 4 and 8 steps."""
    return min(0.05, max(0.01, 0.1 / max(1, steps)))


def search_code(model, y: torch.Tensor, pixels: np.ndarray, level: int, steps: int,
                lam: float, thumb_weight: float = 0.0) -> LatentCode:
    """The integer code at coding `level` for a picture (uint8 `pixels`, whose analysis is `y`), its
    residuals searched for `steps` Adam steps on bits + lam * distortion_scale * (MSE + thumb_weight *
    the MSE of the 1/THUMBNAIL area-downsampled pictures).

    The rate is the Gaussian conditional's information content of the unrounded residual (it pulls
    each one toward its mean); the distortion sees the rounded code through the base synthesis
    (straight-through), measured in the model's working space on the picture's own pixels only.
    """
    latent_codec = model.latent_codec
    height, width = pixels.shape[:2]
    with torch.no_grad(), torch.autocast(y.device.type, enabled=False):
        y = y.float()
        z_hat, indexes, mu_g, g = latent_codec.side_of(y, level)
        start = (y * g - mu_g).clamp(-MAX_RESIDUAL, MAX_RESIDUAL)
        if steps > 0:
            scale = latent_codec.y_conditional.scale(indexes)
            x = pad_to_multiple(image_to_tensor(pixels), model.padding_multiple).to(y.device, model.dtype)
            target = model.to_space(x).float()
    if steps <= 0:
        return _code(z_hat, start, indexes)
    # The picture's own region in the working space (the rest is padding the decoder crops away).
    rows, cols = -(-height // model.space_scale), -(-width // model.space_scale)
    weight = lam * model.distortion_scale
    residual = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([residual], lr=step_size(steps))
    with torch.autocast(y.device.type, enabled=False):
        for _ in range(steps):
            rounded = residual + (torch.round(residual) - residual).detach()
            bits = -torch.log2(latent_codec.y_conditional.likelihood(residual, scale)).sum()
            out = model.synthesis(((rounded + mu_g) / g).to(model.dtype)).float()
            error = (out - target)[..., :rows, :cols]
            mse = error.pow(2).mean()
            if thumb_weight and min(rows, cols) >= THUMBNAIL:
                # The downsampled error is the thumbnails' error (pooling is linear); edge rows and
                # columns short of a whole block are left out, as the training crops have none.
                mse = mse + thumb_weight * torch.nn.functional.avg_pool2d(error, THUMBNAIL).pow(2).mean()
            loss = bits / (height * width) + weight * mse
            # Only the residuals' gradient: the networks' weights take none.
            (residual.grad,) = torch.autograd.grad(loss, [residual])
            optimizer.step()
    return _code(z_hat, residual.detach().clamp(-MAX_RESIDUAL, MAX_RESIDUAL), indexes)


def _code(z_hat: torch.Tensor, residual: torch.Tensor, indexes: torch.Tensor) -> LatentCode:
    return LatentCode(z_hat[0].long().cpu(), torch.round(residual)[0].long().cpu(), indexes[0].cpu())
