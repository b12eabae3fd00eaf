"""Running a network tile by tile, with blended overlaps, so memory stays bounded.

Large images (a 4000x3000 photo) are cut into overlapping tiles; each output
is accumulated with weights that ramp linearly across the overlaps, so
neighbouring tiles fade into each other instead of meeting at a seam. An
input that fits in one tile runs whole, exactly as without tiling.

run_tiled blends whole outputs (the encoder's y, small); BlendedCanvas
assembles the decoded image itself, one row of tiles at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np
import torch


def tile_starts(size: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets covering [0, size) with tiles of `tile` overlapping by at least `overlap`."""
    if size <= tile:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, size - tile, stride))
    starts.append((size - tile) // align * align)
    return sorted(set(starts))


def _ramp(length: int, start: int, tile: int, size: int, overlap: int) -> torch.Tensor:
    """1-D weights of one tile: rising over the overlap unless at the image border."""
    w = torch.ones(length)
    if overlap <= 0:
        return w
    pos = torch.arange(length, dtype=torch.float32) + 0.5
    ramp = (pos / overlap).clamp(max=1.0)
    if start > 0:
        w = torch.minimum(w, ramp)
    if start + tile < size:
        w = torch.minimum(w, ramp.flip(0))
    return w


def _scaled(value: int, scale: int | Fraction) -> int:
    scaled = value * scale
    if scaled != int(scaled):
        raise ValueError(f"{value} x {scale} is not a whole number of output positions")
    return int(scaled)


def run_tiled(fn: Callable[[torch.Tensor], Sequence[torch.Tensor]], x: torch.Tensor, tile: int, overlap: int,
              out_scales: Sequence[int | Fraction], align: int = 1) -> list[torch.Tensor]:
    """Apply `fn` to overlapping tiles of x (N,C,H,W) and blend each of its outputs.

    `fn` returns a sequence of tensors; output i has `out_scales[i]` times x's
    spatial size (a Fraction for an output smaller than x, e.g. an encoder's).
    Tiles are `tile` x `tile` (in x's units) and start on multiples of `align`;
    every tile edge must fall on a whole output position.
    """
    _, _, h, w = x.shape
    if h <= tile and w <= tile:
        return list(fn(x))
    outs: list[torch.Tensor | None] = [None] * len(out_scales)
    norms: list[torch.Tensor | None] = [None] * len(out_scales)
    for top in tile_starts(h, tile, overlap, align):
        for left in tile_starts(w, tile, overlap, align):
            th, tw = min(tile, h), min(tile, w)
            results = fn(x[:, :, top: top + th, left: left + tw])
            for i, (res, s) in enumerate(zip(results, out_scales)):
                if outs[i] is None:
                    outs[i] = res.new_zeros(res.shape[0], res.shape[1], _scaled(h, s), _scaled(w, s))
                    norms[i] = res.new_zeros(1, 1, _scaled(h, s), _scaled(w, s))
                wy = _ramp(_scaled(th, s), top, tile, h, _scaled(overlap, s)).to(res)
                wx = _ramp(_scaled(tw, s), left, tile, w, _scaled(overlap, s)).to(res)
                weight = wy[:, None] * wx[None, :]
                rows = slice(_scaled(top, s), _scaled(top + th, s))
                cols = slice(_scaled(left, s), _scaled(left + tw, s))
                outs[i][:, :, rows, cols] += res * weight
                norms[i][:, :, rows, cols] += weight
    return [o / n for o, n in zip(outs, norms)]


class BlendedCanvas:
    """The decoded image, assembled from overlapping tiles one row of tiles at a time.

    Tiles are blended with the same linear ramps as run_tiled, but only one
    band of float accumulators (a tile high, the image wide) exists at once:
    when a row of tiles is done, the rows no later tile touches are
    normalised, rounded to uint8 and written out. A 8192 px wide image thus
    holds about 100 MB of floats instead of 800 MB. Positions are in output
    pixels; the padded size may exceed the image, which is cropped to it.
    """

    def __init__(self, height: int, width: int, padded: tuple[int, int], tops: list[int], lefts: list[int],
                 tile: tuple[int, int], overlap: int):
        (self.padded_h, self.padded_w), (self.tile_h, self.tile_w) = padded, tile
        self.tops, self.lefts, self.overlap = tops, lefts, overlap
        self.image = np.zeros((height, width, 3), dtype=np.uint8)
        # The weights are separable (a product of a row and a column ramp) and the tiles a grid, so the sum
        # of weights at every pixel is the product of two 1-D sums.
        self.row_norm = self._norm(tops, self.tile_h, self.padded_h)
        self.col_norm = self._norm(lefts, self.tile_w, self.padded_w)
        self.band_top = 0
        self.band = torch.zeros(3, self.tile_h, self.padded_w)

    def _norm(self, starts: list[int], tile: int, size: int) -> torch.Tensor:
        norm = torch.zeros(size)
        for start in starts:
            norm[start: start + tile] += _ramp(tile, start, tile, size, self.overlap)
        return norm

    def add(self, top: int, left: int, tile: torch.Tensor) -> None:
        """Blend one tile (1, 3, tile_h, tile_w) in; its row of tiles starts at the band's top."""
        weight = (_ramp(self.tile_h, top, self.tile_h, self.padded_h, self.overlap)[:, None]
                  * _ramp(self.tile_w, left, self.tile_w, self.padded_w, self.overlap)[None, :])
        rows = slice(top - self.band_top, top - self.band_top + self.tile_h)
        self.band[:, rows, left: left + self.tile_w] += tile[0].float().cpu() * weight

    def finish_row(self, index: int) -> None:
        """Row of tiles `index` is done: write out the rows above the next one's top."""
        end = self.tops[index + 1] if index + 1 < len(self.tops) else self.padded_h
        done = end - self.band_top
        values = self.band[:, :done] / (self.row_norm[self.band_top:end, None] * self.col_norm[None, :])
        rows = min(end, self.image.shape[0]) - self.band_top
        if rows > 0:
            pixels = torch.round(torch.nan_to_num(values, nan=0.0).clamp(0.0, 1.0) * 255.0).to(torch.uint8)
            self.image[self.band_top: self.band_top + rows] = pixels[:, :rows, : self.image.shape[1]].permute(
                1, 2, 0).numpy()
        band = torch.zeros_like(self.band)
        band[:, : self.tile_h - done] = self.band[:, done:]
        self.band, self.band_top = band, end
