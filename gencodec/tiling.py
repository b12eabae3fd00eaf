"""Running a network tile by tile, with blended overlaps, so memory stays bounded.

Large images (a 4000x3000 photo) are cut into overlapping tiles; each output
is accumulated with weights that ramp linearly across the overlaps, so
neighbouring tiles fade into each other instead of meeting at a seam. An
input that fits in one tile runs whole, exactly as without tiling.
"""

from __future__ import annotations

from typing import Callable, Sequence

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


def run_tiled(fn: Callable[[torch.Tensor], Sequence[torch.Tensor]], x: torch.Tensor, tile: int, overlap: int,
              out_scales: Sequence[int], align: int = 1) -> list[torch.Tensor]:
    """Apply `fn` to overlapping tiles of x (N,C,H,W) and blend each of its outputs.

    `fn` returns a sequence of tensors; output i has `out_scales[i]` times x's
    spatial size. Tiles are `tile` x `tile` (in x's units) and start on
    multiples of `align`.
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
                    outs[i] = res.new_zeros(res.shape[0], res.shape[1], h * s, w * s)
                    norms[i] = res.new_zeros(1, 1, h * s, w * s)
                wy = _ramp(th * s, top, tile, h, overlap * s).to(res)
                wx = _ramp(tw * s, left, tile, w, overlap * s).to(res)
                weight = wy[:, None] * wx[None, :]
                outs[i][:, :, top * s: (top + th) * s, left * s: (left + tw) * s] += res * weight
                norms[i][:, :, top * s: (top + th) * s, left * s: (left + tw) * s] += weight
    return [o / n for o, n in zip(outs, norms)]
