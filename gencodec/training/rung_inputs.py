"""Training inputs for the generative decoder as the downscaled rungs use it (gencodec.rungs).

At a downscaled rung the decoder never sees the photo's own code: it decodes
the small picture at realism 0, upsamples it, analyses that blurry picture
again at full size at the rung's `regenerate` coding level, draws on that
code at realism 1, and puts the upsampled picture's low frequencies back
(Codec._picture_of). A denoiser trained only on the codes of full-size
photos reads that code as the code of a smooth photo and draws little on it.

`rung_inputs` makes the same input from a training crop, with the frozen
codec, so that a decoder stage can train the denoiser on it: the crop is
area-downscaled by the rung's factor, coded at the rung's coding level with
real rounding, decoded, rounded to 8 bits, moved to the crop's mean colour
where the model codes a colour offset, and upsampled (bicubic): the
functions decoding uses. (The encoder search is left out: it makes the
small picture a little sharper than this one.) The photo itself stays the target.
`keep_low_frequencies` is the differentiable twin of gencodec.rungs'
(a Gaussian blur in float instead of Pillow's on uint8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import colour_offset
from ..imageio import image_to_tensor, tensor_to_image
from ..rungs import LOW_PASS_SIGMA, Rung, downscale_image, upscale_image


@dataclass
class RungInputs:
    """One batch through downscaled rungs: `pictures`, the upsampled realism-0 pictures a decoder sees
    (N, 3, H, W) in [0, 1]; `levels`, the coding level each is analysed at again (its rung's
    `regenerate`); `low_pass`, the Gaussian blur of each picture, which decoding keeps."""

    pictures: torch.Tensor
    levels: torch.Tensor
    low_pass: torch.Tensor


def downscaled_rungs(rungs: list[Rung]) -> list[Rung]:
    """The rungs whose pictures are coded smaller than the photo (the ones rung_inputs serves)."""
    return [rung for rung in rungs if rung.downscale > 1]


@torch.no_grad()
def rung_inputs(model, photos: torch.Tensor, rungs: list[Rung], generator: torch.Generator | None = None
                ) -> RungInputs:
    """photos (N, 3, H, W) in [0, 1], each sent through one of `rungs` (drawn uniformly; downscaled rungs
    only) as decoding would. H and W must let every rung's small picture be coded (multiples of
    downscale x padding_multiple)."""
    if not rungs or any(rung.downscale == 1 for rung in rungs):
        raise ValueError("rung_inputs needs downscaled rungs")
    height, width = photos.shape[-2:]
    codec, was_training = model.latent_codec, model.latent_codec.training
    codec.eval()  # real rounding, as in a file
    pictures, levels = [], []
    try:
        for photo in photos:
            rung = rungs[int(torch.randint(0, len(rungs), (1,), generator=generator))]
            pixels = tensor_to_image(photo)
            small = downscale_image(pixels, rung.downscale)
            x = image_to_tensor(small).to(photos.device, photos.dtype)
            if x.shape[-2] % model.padding_multiple or x.shape[-1] % model.padding_multiple:
                raise ValueError(f"a {height}x{width} crop downscaled by {rung.downscale} is not a multiple of "
                                 f"{model.padding_multiple} a side: use crops that are")
            level = torch.full((1,), rung.level, device=photos.device, dtype=torch.long)
            decoded = tensor_to_image(model.synthesis(codec(model.analysis(x), level)["y_hat"]))
            if model.config.get("colour_offset", False):
                offset = colour_offset.measure(decoded, colour_offset.mean_colour(pixels))
                decoded = colour_offset.apply(decoded, offset)
            pictures.append(image_to_tensor(upscale_image(decoded, width, height)))
            levels.append(rung.regenerate)
    finally:
        codec.train(was_training)
    pictures = torch.cat(pictures).to(photos.device, photos.dtype)
    return RungInputs(pictures, torch.tensor(levels, device=photos.device), gaussian_blur(pictures))


def random_crop(tensors: list[torch.Tensor], size: int, generator: torch.Generator | None = None
                ) -> list[torch.Tensor]:
    """The same random size x size crop of every tensor (N, C, H, W) of the list (all of one size)."""
    height, width = tensors[0].shape[-2:]
    size_h, size_w = min(size, height), min(size, width)
    top = int(torch.randint(0, height - size_h + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - size_w + 1, (1,), generator=generator))
    return [t[..., top:top + size_h, left:left + size_w] for t in tensors]


def gaussian_blur(x: torch.Tensor, sigma: float = LOW_PASS_SIGMA) -> torch.Tensor:
    """x (N, C, H, W) blurred by a Gaussian of `sigma` pixels (3 sigma wide, reflected at the edges), one
    separable pass per axis. Written here rather than taken from torchvision, which the package does not
    depend on."""
    radius = int(np.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)
    channels = x.shape[1]
    x = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = torch.nn.functional.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return torch.nn.functional.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def keep_low_frequencies(drawn: torch.Tensor, low_pass: torch.Tensor) -> torch.Tensor:
    """drawn with its low frequencies replaced by `low_pass` (a picture's gaussian_blur): what decoding
    does to a downscaled rung's realism-1 picture (gencodec.rungs.keep_low_frequencies)."""
    return drawn - gaussian_blur(drawn) + low_pass
