"""The colour offset: a file's three numbers that put its picture's mean colour where the photo's is.

At extreme rates a model's realism-0 picture can carry a colour cast: its mean
red, green or blue off by 10 to 30 levels, a loss a person sees at once and
that costs several dB of PSNR. Three integers fix it for about 3 bytes. A model
whose config has `colour_offset: true` writes them into every file: the
encoder decodes its own realism-0 picture, measures the mean of the photo
minus that picture per channel, rounds it to whole 8-bit levels, and codes it
uniformly in the ANS stream (`BITS` bits a channel). The decoder adds the same
integers to every pixel of what it decodes, at any realism, and clips: being
integers, they move no pixel by a fraction, so decoding stays as exact as it
was.
"""

from __future__ import annotations

import numpy as np

#: Each channel's offset is an integer in [-HALF_RANGE, HALF_RANGE - 1] levels.
HALF_RANGE = 64
#: Bits per channel in the stream (uniform code).
BITS = 7
CHANNELS = 3

assert 1 << BITS == 2 * HALF_RANGE


def mean_colour(image: np.ndarray) -> np.ndarray:
    """Per-channel mean (3,) float64 of a uint8 (H, W, 3) image."""
    return image.reshape(-1, CHANNELS).mean(0, dtype=np.float64)


def measure(decoded: np.ndarray, original_mean: np.ndarray) -> np.ndarray:
    """The offset (3,) int32 that moves `decoded`'s (uint8 (H, W, 3)) mean colour to `original_mean`."""
    diff = np.asarray(original_mean, dtype=np.float64) - mean_colour(decoded)
    return np.clip(np.round(diff), -HALF_RANGE, HALF_RANGE - 1).astype(np.int32)


def apply(image: np.ndarray, offset: np.ndarray | None) -> np.ndarray:
    """`image` (uint8 (H, W, 3)) with `offset` (3,) levels added to every pixel, clipped; as is for None."""
    if offset is None or not np.any(offset):
        return image
    shifted = image.astype(np.int16) + np.asarray(offset, dtype=np.int16)
    return np.clip(shifted, 0, 255).astype(np.uint8)


def to_symbols(offset: np.ndarray) -> np.ndarray:
    """Offset -> the symbols the stream carries, each in [0, 2 * HALF_RANGE)."""
    return np.asarray(offset, dtype=np.int32) + HALF_RANGE


def from_symbols(symbols: np.ndarray) -> np.ndarray:
    return np.asarray(symbols, dtype=np.int32) - HALF_RANGE
