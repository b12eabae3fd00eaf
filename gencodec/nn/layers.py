"""Layers shared by the transforms: residual blocks, windowed attention, resampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class ResidualBlock(nn.Module):
    """conv3x3 -> GELU -> conv3x3, added to the input.

    No normalisation layer: batch statistics would make a code depend on the
    other images in a batch, and compression models train well without them.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x))))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, plus a residual.

    Windows keep memory linear in the image size, so a 4000x3000 photo costs
    no more per pixel than a thumbnail. Positions that only pad a window up to
    full size are masked out of the keys.
    """

    def __init__(self, channels: int, heads: int = 4, window: int = 8):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.window = window
        self.norm = nn.GroupNorm(1, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        win = self.window
        ph, pw = (-h) % win, (-w) % win
        qkv = self.qkv(self.norm(x))
        qkv = F.pad(qkv, (0, pw, 0, ph))
        q, k, v = rearrange(
            qkv, "n (three heads d) (hb wh) (wb ww) -> three (n hb wb) heads (wh ww) d",
            three=3, heads=self.heads, wh=win, ww=win,
        )
        mask = None
        if ph or pw:
            valid = torch.zeros(h + ph, w + pw, dtype=torch.bool, device=x.device)
            valid[:h, :w] = True
            valid = rearrange(valid, "(hb wh) (wb ww) -> (hb wb) 1 1 (wh ww)", wh=win, ww=win)
            mask = valid.repeat(n, 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = rearrange(
            out, "(n hb wb) heads (wh ww) d -> n (heads d) (hb wh) (wb ww)",
            n=n, hb=(h + ph) // win, wb=(w + pw) // win, wh=win, ww=win,
        )
        return x + self.proj(out[:, :, :h, :w])


class Upsample2x(nn.Module):
    """Sub-pixel convolution: conv to 4x channels, then depth-to-space (no checkerboard)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


def stage_blocks(channels: int, n_blocks: int, attention: bool, heads: int, window: int) -> list[nn.Module]:
    """The residual blocks of one resolution stage, with optional attention after them."""
    blocks: list[nn.Module] = [ResidualBlock(channels) for _ in range(n_blocks)]
    if attention:
        blocks.append(WindowAttention(channels, heads=heads, window=window))
    return blocks
