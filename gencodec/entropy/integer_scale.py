"""The scale branch of the hyper-synthesis, as an integer network: z^ -> scale indexes.

Why this path cannot diverge between machines
---------------------------------------------
The decoder must derive exactly the scale index the encoder used for every
symbol; a single differing index decodes the rest of the stream into garbage.
Here every quantity on the path from z^ (integers read from the file) to the
index is an integer:

* weights and biases are fixed-point numbers rounded once from the float
  parameters (multiplying a float by a power of two and rounding is exact
  and the same on every IEEE machine);
* a convolution is `unfold` (a pure copy) followed by a float64 matrix
  product of integers. With |z^| <= INPUT_MAX, |weight| <= WEIGHT_MAX and
  activations <= ACT_MAX, every product and every partial sum is an integer
  below 2**40, far inside the 2**53 range where float64 is exact; so the sum
  is exact whatever the order of additions, blocking, FMA use or thread
  count, on CPU or GPU. float64 also never takes the TF32 path;
* rescaling is a division by a power of two (exact) and a floor;
* depth-to-space upsampling only moves values.

Training runs the same network in float32 with the same rounding applied
through straight-through estimators, so what is trained is what is coded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_FRAC = 8            # weights are multiples of 2**-8 ...
WEIGHT_MAX = (1 << 11) - 1  # ... with |w| < 8
ACT_FRAC = 4               # hidden activations are multiples of 2**-4 ...
ACT_MAX = (1 << 12) - 1     # ... in [0, 256)
INPUT_MAX = 127             # z^ is clipped to +-127 on its way in
BIAS_MAX = float(1 << 36)   # keeps every partial sum far below 2**53


def _ste(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Forward `value`, backward identity (straight-through estimator)."""
    return x + (value - x).detach()


def _fixed(x: torch.Tensor, frac: int, limit: float) -> torch.Tensor:
    """Round a float parameter to the integer grid 2**-frac (as integer values)."""
    return torch.clamp(torch.round(x * (1 << frac)), -limit, limit)


def _exact_conv3x3(a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Exact integer 3x3 convolution (zero padding) of float64 integer tensors.

    Written as unfold + matmul rather than F.conv2d so that no backend may pick
    a Winograd or FFT algorithm, whose intermediate values are not integers.
    """
    n, _, h, w = a.shape
    cols = F.unfold(a, kernel_size=3, padding=1)                  # (N, C*9, H*W)
    out = torch.matmul(weight.reshape(weight.shape[0], -1), cols)  # (N, O, H*W)
    return (out + bias[None, :, None]).reshape(n, -1, h, w)


class IntegerScaleNet(nn.Module):
    """z^ (N, C_z, h, w) integers + rate level -> scale index (N, C_y, 4h, 4w) in [0, n_scales).

    Two sub-pixel upsampling convolutions and a 3x3 output convolution, with
    bounded ReLU activations; the rate level enters as a learned bias on the
    first and last layers.
    """

    def __init__(self, in_channels: int, hidden: int, out_channels: int, n_levels: int, n_scales: int):
        super().__init__()
        self.n_scales = n_scales
        self.conv1 = nn.Conv2d(in_channels, hidden * 4, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden * 4, 3, padding=1)
        self.conv3 = nn.Conv2d(hidden, out_channels, 3, padding=1)
        for conv in (self.conv1, self.conv2, self.conv3):
            nn.init.normal_(conv.weight, std=(2 / (conv.in_channels * 9)) ** 0.5)
            nn.init.zeros_(conv.bias)
        self.level_bias1 = nn.Parameter(torch.zeros(n_levels, hidden * 4))
        # Start in the middle of the scale table, where gradients reach both ends.
        self.level_bias3 = nn.Parameter(torch.full((n_levels, out_channels), n_scales / 4))
        # (input frac bits, output frac bits) of each layer; the accumulator
        # of a layer carries input + WEIGHT_FRAC fractional bits.
        self._fracs = ((0, ACT_FRAC), (ACT_FRAC, ACT_FRAC), (ACT_FRAC, None))

    # -- training path: float32 with the same rounding, straight-through -----------------
    def forward(self, z_hat: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Differentiable indexes for training: float values that equal integers."""
        a = z_hat.clamp(-INPUT_MAX, INPUT_MAX)
        convs = (self.conv1, self.conv2, self.conv3)
        for i, conv in enumerate(convs):
            in_frac, out_frac = self._fracs[i]
            acc_frac = in_frac + WEIGHT_FRAC
            w = _ste(conv.weight, _fixed(conv.weight, WEIGHT_FRAC, WEIGHT_MAX) / (1 << WEIGHT_FRAC))
            b = conv.bias
            if i == 0:
                b = b[None] + self.level_bias1[level]
            elif i == 2:
                b = b[None] + self.level_bias3[level]
            else:
                b = b[None].expand(a.shape[0], -1)
            b = _ste(b, _fixed(b, acc_frac, BIAS_MAX) / (1 << acc_frac))
            a = F.conv2d(a, w, None, padding=1) + b[:, :, None, None]
            if out_frac is None:
                # Straight-through clamp: out-of-range predictions still get a gradient back.
                idx = _ste(a, a.clamp(0, self.n_scales - 1))
                return _ste(idx, torch.floor(idx + 0.5))
            a = a.clamp(0, ACT_MAX / (1 << out_frac))
            a = _ste(a, torch.floor(a * (1 << out_frac)) / (1 << out_frac))
            a = F.pixel_shuffle(a, 2)
        raise AssertionError("unreachable")

    # -- coding path: exact integers ------------------------------------------------------
    @torch.no_grad()
    def indexes(self, z_hat: torch.Tensor, level: int) -> torch.Tensor:
        """Exact int64 scale indexes; identical on every machine for the same z^ and level."""
        a = z_hat.to(torch.float64).clamp(-INPUT_MAX, INPUT_MAX)
        convs = (self.conv1, self.conv2, self.conv3)
        for i, conv in enumerate(convs):
            in_frac, out_frac = self._fracs[i]
            acc_frac = in_frac + WEIGHT_FRAC
            w = _fixed(conv.weight.to(torch.float64), WEIGHT_FRAC, WEIGHT_MAX)
            b = conv.bias.to(torch.float64)
            if i == 0:
                b = b + self.level_bias1[level].to(torch.float64)
            elif i == 2:
                b = b + self.level_bias3[level].to(torch.float64)
            b = _fixed(b, acc_frac, BIAS_MAX)
            acc = _exact_conv3x3(a, w.to(a.device), b.to(a.device))
            if out_frac is None:
                half = float(1 << (acc_frac - 1))
                idx = torch.floor((acc + half) * (2.0 ** -acc_frac))
                return idx.clamp(0, self.n_scales - 1).to(torch.int64)
            a = torch.floor(acc * (2.0 ** -(acc_frac - out_frac))).clamp(0, ACT_MAX)
            a = F.pixel_shuffle(a, 2)
        raise AssertionError("unreachable")
