"""The rungs of a model's rate ladder: which coding level a file's level uses, and at what size.

At the lowest rates the codec keeps more of a photo when it codes the photo made smaller, as a
classical codec does: the pixel model's realism-0 picture of a 4x smaller photo, upsampled back, is
2.6 dB nearer the photo than its full-size picture at about 120 bytes (8 Kodak photos). A rung says

- `level`: the model's coding level (its gains and tables) the file uses;
- `downscale`: the photo is area-downscaled by this factor (1, 2 or 4) before it is coded, and the
  realism-0 picture is upsampled back (bicubic);
- `regenerate`: for a downscaled rung, the coding level at which the decoder analyses that upsampled
  picture again, at full size, to give its generative decoder a code to draw texture from (realism
  above 0). Nothing of it is in the file: it is the decoder's work, as the sampling is. The drawn
  picture keeps the upsampled picture's low frequencies (keep_low_frequencies): it adds detail, and
  the layout and colours stay the file's.

The file's header carries the rung's index as its level, and the image's own size; the stream is
sealed with the coded size. A model without `rungs` in its config has one rung per coding level, at
full size: file level L is coding level L.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

DOWNSCALES = (1, 2, 4)
#: The Gaussian (standard deviation, pixels) that splits a generated picture's layout and colour, which
#: are the file's, from its detail, which is drawn: about what a 1/8 thumbnail sees. On 8 Kodak photos at
#: levels 1 and 5 of the pixel model it brings realism 1's thumbnail to realism 0's (+0.3 and +1.1 dB) and
#: its PSNR up by 0.2 and 0.4 dB, with LPIPS +0.003 and -0.005 (sigma 2: LPIPS +0.03 and +0.01; 8: the
#: thumbnail 0.2 dB short of realism 0's).
LOW_PASS_SIGMA = 4
#: The header's level field has 4 bits.
MAX_RUNGS = 16


@dataclass(frozen=True)
class Rung:
    level: int
    downscale: int = 1
    regenerate: int | None = None


def rungs_of(config, n_levels: int) -> list[Rung]:
    """The ladder a model's config describes (`rungs`: [[level, downscale, regenerate or null], ...]),
    checked; the identity ladder when it has none."""
    spec = config.get("rungs")
    if spec is None:
        return [Rung(level) for level in range(n_levels)]
    if not isinstance(spec, (list, tuple)) or not 1 <= len(spec) <= MAX_RUNGS:
        raise ValueError(f"rungs must be a list of 1 to {MAX_RUNGS} [level, downscale, regenerate] entries")
    rungs = []
    for entry in spec:
        if not isinstance(entry, (list, tuple)) or len(entry) != 3:
            raise ValueError(f"a rung is [level, downscale, regenerate], not {entry!r}")
        level, downscale, regenerate = entry
        if not (isinstance(level, int) and 0 <= level < n_levels):
            raise ValueError(f"a rung's level must be a coding level 0..{n_levels - 1}, not {level!r}")
        if downscale not in DOWNSCALES:
            raise ValueError(f"a rung's downscale must be one of {DOWNSCALES}, not {downscale!r}")
        if downscale == 1 and regenerate is not None:
            raise ValueError("a full-size rung has no regenerate level")
        if downscale > 1 and not (isinstance(regenerate, int) and 0 <= regenerate < n_levels):
            raise ValueError(f"a downscaled rung needs a regenerate level 0..{n_levels - 1}, not {regenerate!r}")
        rungs.append(Rung(level, downscale, regenerate))
    return rungs


def coded_size(width: int, height: int, downscale: int) -> tuple[int, int]:
    """(width, height) of the picture a rung codes for an image of (width, height)."""
    return -(-width // downscale), -(-height // downscale)


def downscale_image(pixels: np.ndarray, downscale: int) -> np.ndarray:
    """uint8 (H, W, 3) -> the area-downscaled picture a rung codes (an edge block averages what it has)."""
    if downscale == 1:
        return pixels
    height, width = pixels.shape[:2]
    return np.asarray(Image.fromarray(pixels).resize(coded_size(width, height, downscale), Image.BOX))


def upscale_image(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 picture -> uint8 (height, width, 3), bicubic."""
    if pixels.shape[:2] == (height, width):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.BICUBIC))


def keep_low_frequencies(drawn: np.ndarray, picture: np.ndarray, sigma: float = LOW_PASS_SIGMA) -> np.ndarray:
    """uint8 `drawn` with its low frequencies (a Gaussian blur of `sigma` pixels) replaced by `picture`'s:
    drawn + blur(picture) - blur(drawn). Pillow's blur works on uint8, which is within a level of exact
    and takes a quarter of the memory of float32 on the largest pictures."""
    def blur(image: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(sigma)), dtype=np.int16)
    kept = drawn.astype(np.int16) + blur(picture) - blur(drawn)
    return np.clip(kept, 0, 255).astype(np.uint8)
