"""Factorized prior for the hyper-latent z^ (Balle et al. 2018, "fully factorized").

Each channel has its own learned, non-parametric cumulative density: a tiny
monotone network c(x) with sigmoid(c(x)) as the CDF. The variable-rate model
keeps one density per (rate level, channel), since a level's gain changes the
spread of z.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .tables import quantize_pmf


class FactorizedPrior(nn.Module):
    """`channels` independent densities with integer coding tables over [-half_width, half_width].

    `counts[c]`: column j is the symbol z = j - half_width, the last column the escape.
    The tables depend on learned parameters: call `update_tables()` after
    training (model export does) before coding.
    """

    def __init__(self, channels: int, half_width: int = 32, filters: tuple[int, ...] = (3, 3, 3),
                 init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        self.half_width = half_width
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        self.register_buffer("counts", torch.zeros(channels, 2 * half_width + 2, dtype=torch.int32))

    def _logits_cumulative(self, x: torch.Tensor, channels: slice) -> torch.Tensor:
        """x (C, 1, M) -> logits of the CDF at x, for the channels in `channels`."""
        logits = x
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            logits = torch.matmul(F.softplus(matrix[channels]), logits) + bias[channels]
            if i < len(self.factors):
                logits = logits + torch.tanh(self.factors[i][channels]) * torch.tanh(logits)
        return logits

    def likelihood(self, z: torch.Tensor, first_channel: int) -> torch.Tensor:
        """P(bin of z) for z (N, C, H, W) under channels first_channel .. first_channel + C.

        Uses the sign trick: evaluate both CDFs on the side where they are
        small, so the difference keeps its precision in the tails.
        """
        n, c, h, w = z.shape
        x = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        sel = slice(first_channel, first_channel + c)
        lower = self._logits_cumulative(x - 0.5, sel)
        upper = self._logits_cumulative(x + 0.5, sel)
        sign = -torch.sign(lower + upper).detach()
        lik = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return lik.reshape(c, n, h, w).permute(1, 0, 2, 3).clamp_min(1e-9)

    @torch.no_grad()
    def update_tables(self) -> None:
        """Quantise every channel's density over [-half_width, half_width] + escape into `counts`."""
        k = self.half_width
        device = self.matrices[0].device
        z = torch.arange(-k, k + 1, device=device, dtype=torch.float32)
        x = z[None, None].expand(self.channels, 1, -1)
        everything = slice(0, self.channels)
        cdf_upper = torch.sigmoid(self._logits_cumulative(x + 0.5, everything).double())[:, 0]
        cdf_lower = torch.sigmoid(self._logits_cumulative(x - 0.5, everything).double())[:, 0]
        pmf = (cdf_upper - cdf_lower).clamp_min(0)
        escape = cdf_lower[:, :1] + (1 - cdf_upper[:, -1:])
        self.counts.copy_(quantize_pmf(torch.cat([pmf, escape], dim=1)).to(self.counts.device))

    @property
    def tables_ready(self) -> bool:
        return bool(self.counts[:, -1].gt(0).all())
