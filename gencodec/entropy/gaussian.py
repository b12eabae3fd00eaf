"""Gaussian conditional for the mean-subtracted latent s = round(y - mu).

The scale of every element is one of `n_scales` values, log-uniform between
`scale_min` and `scale_max`, named by an integer index. The integer scale
network produces the index; this module turns it into a scale for training
and into a probability table for coding.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .escape import ESCAPE_BITS
from .tables import TOTAL, quantize_pmf


def standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2 ** -0.5))


class GaussianConditional(nn.Module):
    """Indexed-scale Gaussian prior of s, with its integer coding tables.

    `counts[i]` holds the table for scale index i: column j (0 <= j <= 2*max_half_width)
    is the symbol s = j - max_half_width, and the last column is the escape symbol
    that announces a value beyond +-half_widths[i]. Only the columns within the
    row's half width are used; the rest are zero.
    """

    def __init__(self, n_scales: int = 64, scale_min: float = 0.11, scale_max: float = 64.0,
                 tail_sigmas: float = 5.0):
        super().__init__()
        self.n_scales = n_scales
        self.log_scale_min = math.log(scale_min)
        self.log_scale_step = (math.log(scale_max) - math.log(scale_min)) / (n_scales - 1)
        scales = torch.exp(self.log_scale_min + self.log_scale_step * torch.arange(n_scales, dtype=torch.float64))
        half_widths = torch.ceil(tail_sigmas * scales).long().clamp_min(1)
        kmax = int(half_widths.max())
        self.max_half_width = kmax
        s = torch.arange(-kmax, kmax + 1, dtype=torch.float64)
        upper = standard_normal_cdf((s[None] + 0.5) / scales[:, None])
        lower = standard_normal_cdf((s[None] - 0.5) / scales[:, None])
        pmf = upper - lower
        inside = s[None].abs() <= half_widths[:, None]
        pmf = torch.where(inside, pmf, torch.zeros_like(pmf))
        escape = 2 * standard_normal_cdf(-(half_widths.double() + 0.5) / scales)
        counts = torch.zeros(n_scales, 2 * kmax + 2, dtype=torch.int32)
        for i in range(n_scales):
            k = int(half_widths[i])
            row = torch.cat([pmf[i, kmax - k: kmax + k + 1], escape[i: i + 1]])
            q = quantize_pmf(row)
            counts[i, kmax - k: kmax + k + 1] = q[:-1]
            counts[i, -1] = q[-1]
        # Integer buffers: `.half()` / `.double()` on the model leave them untouched.
        self.register_buffer("counts", counts)
        self.register_buffer("half_widths", half_widths.to(torch.int32))

    def scale(self, index: torch.Tensor) -> torch.Tensor:
        """Scale for a (possibly fractional, during training) index."""
        return torch.exp(self.log_scale_min + self.log_scale_step * index)

    @staticmethod
    def likelihood(residual: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """P(round(residual) bin) under N(0, scale), the differentiable training rate.

        Evaluated on |residual| so both CDF terms sit in the accurate lower tail.
        """
        v = residual.abs()
        upper = standard_normal_cdf((0.5 - v) / scale)
        lower = standard_normal_cdf((-0.5 - v) / scale)
        return (upper - lower).clamp_min(1e-9)

    def row(self, index: int) -> torch.Tensor:
        """The coded part of table `index`: counts of s = -k..k, then the escape."""
        k = int(self.half_widths[index])
        kmax = self.max_half_width
        return torch.cat([self.counts[index, kmax - k: kmax + k + 1], self.counts[index, -1:]])

    def bits(self, symbols: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Exact coded bits of each integer symbol under its table, escapes included."""
        k = self.half_widths[index].long()
        escaped = symbols.abs() > k
        col = torch.where(escaped, torch.full_like(k, self.counts.shape[1] - 1),
                          symbols.long() + self.max_half_width)
        p = self.counts[index.long(), col].double() / TOTAL
        return -torch.log2(p) + escaped.double() * ESCAPE_BITS
