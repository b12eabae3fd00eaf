"""Crop windows for side-by-side pages: where to look, and the same window cut from every image.

A window is a box (left, top, right, bottom) in pixels, Pillow's order. A
reconstruction is the original's size, so one box chosen on the original
cuts the matching region from each of them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]


def centre_box(width: int, height: int, size: int) -> Box:
    """The `size`-pixel square at the centre (the whole side where the image is smaller)."""
    w, h = min(size, width), min(size, height)
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def most_detailed_box(image: np.ndarray, size: int) -> Box:
    """The `size`-pixel square of `image` (uint8 RGB, H x W x 3) with the most fine detail.

    Detail is the energy of the luma's Laplacian, summed over the window. Plain
    local variance would pick the strongest edge between two flat areas (a
    horizon, a dark coat on a light wall) rather than texture, which is what a
    low-rate codec loses or invents. The luma is averaged over 2x2 pixels first
    so that sensor noise and JPEG ringing in the original count less.
    """
    height, width = image.shape[:2]
    w, h = min(size, width), min(size, height)
    luma = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if min(height, width) >= 8:
        luma = luma[: height // 2 * 2, : width // 2 * 2]
        luma = luma.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
        factor = 2
    else:
        factor = 1
    laplacian = np.zeros_like(luma)
    laplacian[1:-1, 1:-1] = (4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1]
                             - luma[1:-1, :-2] - luma[1:-1, 2:])
    energy = laplacian ** 2
    # Window sums at every position from a summed-area table.
    table = np.zeros((energy.shape[0] + 1, energy.shape[1] + 1))
    table[1:, 1:] = energy.cumsum(axis=0).cumsum(axis=1)
    wh, ww = max(1, h // factor), max(1, w // factor)
    sums = table[wh:, ww:] - table[:-wh, ww:] - table[wh:, :-ww] + table[:-wh, :-ww]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    left, top = min(int(left) * factor, width - w), min(int(top) * factor, height - h)
    return left, top, left + w, top + h


def cut(image: Image.Image, box: Box, zoom: int = 1) -> Image.Image:
    """`box` of `image`, enlarged `zoom` times by nearest neighbour (each pixel a zoom x zoom block).

    Nearest neighbour because any smoothing filter would blur away the very
    texture and artefacts the crop is there to show.
    """
    crop = image.crop(box)
    if zoom != 1:
        crop = crop.resize((crop.width * zoom, crop.height * zoom), Image.NEAREST)
    return crop
