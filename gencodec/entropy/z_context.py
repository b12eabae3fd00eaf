"""A causal context model for the hyper-latent z^, in place of its factorized prior where a model has one.

At extreme rates z^ is a large part of the file (three quarters of the pixel model's at its lowest level
under the factorized prior), and its values
are far from independent: neighbouring positions of a channel agree. Each value is predicted from
the four already decoded neighbours of its own channel (left, up, up-left, up-right) by integer
weights,

    mean = clip(round((w . taps + b) / 2**FRAC_BITS), -k, k)

and the residual z^ - mean, in [-2k, 2k], is coded with one of N_CLASSES tables of its (level,
channel), chosen by how busy the neighbourhood is (ACTIVITY_EDGES on the sum of |taps|): a quiet
neighbourhood predicts a quiet value. Beyond an edge a neighbour takes the nearest value already
decoded (up's for the left ones in the first column and up-right in the last, left's for the ones
above in the first row, 0 at the very first position), which suits the small grids of z^ better than
zeros (a 768x512 photo's z^ is 12x8, and 36 of its 96 positions lie on an edge). z^ itself never
leaves [-k, k] (the encoder clamps it), so no escape is needed, and a decoded value outside it marks
a damaged file.

Exact by construction: the weights and tables are integers stored in the model file, and every
partial sum of the prediction is an exact int64, so encoder and decoder agree on any machine.

The decoder goes position by position in raster order (all channels of a position at once), since
each prediction needs its decoded neighbours: one small ANS call per position of z^ (1/64 of the
image per side). The weights and tables are fitted to a trained codec by least squares and
counting on training photos (gencodec.training.z_context_fit), not by gradient descent.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import CorruptFileError
from .ans import min_bits_of_counts
from .tables import TOTAL

FRAC_BITS = 12
N_TAPS = 4  # left, up, up-left, up-right
ACTIVITY_EDGES = (1, 3)  # sum of |taps|: 0, 1..2, >= 3
N_CLASSES = len(ACTIVITY_EDGES) + 1


def neighbour_taps(z: np.ndarray) -> np.ndarray:
    """z (C, h, w) integers -> (C, N_TAPS, h, w) int64: each position's left, up, up-left and up-right
    neighbour in its channel, by the edge rule of the module docstring (the encoder's, all at once)."""
    padded = np.pad(np.asarray(z, dtype=np.int64), ((0, 0), (1, 0), (1, 1)))
    taps = np.stack([padded[:, 1:, :-2], padded[:, :-1, 1:-1], padded[:, :-1, :-2], padded[:, :-1, 2:]], axis=1)
    taps[:, 1:, 0, :] = taps[:, :1, 0, :]          # first row: the ones above take left's value
    taps[:, 0, 1:, 0] = taps[:, 1, 1:, 0]          # first column: left and up-left take up's
    taps[:, 2, 1:, 0] = taps[:, 1, 1:, 0]
    taps[:, 3, 1:, -1] = taps[:, 1, 1:, -1]        # last column: up-right takes up's
    return taps


def taps_at(z: np.ndarray, i: int, j: int) -> np.ndarray:
    """The taps of position (i, j) from z (C, h, w) decoded up to it in raster order -> (C, N_TAPS)
    int64: neighbour_taps at one position (the decoder's, one position at a time)."""
    width = z.shape[2]
    left = z[:, i, j - 1] if j > 0 else (z[:, i - 1, j] if i > 0 else np.zeros(z.shape[0], dtype=np.int64))
    if i == 0:
        return np.stack([left, left, left, left], axis=1)
    up = z[:, i - 1, j]
    up_left = z[:, i - 1, j - 1] if j > 0 else up
    up_right = z[:, i - 1, j + 1] if j < width - 1 else up
    return np.stack([left, up, up_left, up_right], axis=1)


def predict(taps: np.ndarray, weights: np.ndarray, half_width: int) -> tuple[np.ndarray, np.ndarray]:
    """taps (C, N_TAPS, ...) int64 and weights (C, N_TAPS + 1) int (the last column the bias) ->
    (mean, activity class), each (C, ...) int64. The one formula both coder sides use."""
    w = np.asarray(weights, dtype=np.int64)
    extra = (1,) * (taps.ndim - 2)
    acc = (taps * w[:, :N_TAPS].reshape(w.shape[0], N_TAPS, *extra)).sum(1) + w[:, N_TAPS].reshape(-1, *extra)
    mean = np.clip((acc + (1 << (FRAC_BITS - 1))) >> FRAC_BITS, -half_width, half_width)
    activity = np.abs(taps).sum(1)
    return mean, np.digitize(activity, ACTIVITY_EDGES).astype(np.int64)


class ZContextPrior(nn.Module):
    """Integer prediction weights and residual tables for `rows` (level, channel) pairs of z^ in
    [-half_width, half_width]. Zero tables until fitted (`tables_ready`)."""

    def __init__(self, rows: int, half_width: int):
        super().__init__()
        self.rows = rows
        self.half_width = half_width
        self.register_buffer("weights", torch.zeros(rows, N_TAPS + 1, dtype=torch.int32))
        self.register_buffer("counts", torch.zeros(rows, N_CLASSES, 4 * half_width + 1, dtype=torch.int32))
        self._probabilities: np.ndarray | None = None

    @property
    def tables_ready(self) -> bool:
        return bool(self.counts.long().sum(-1).eq(TOTAL).all()) and bool(self.counts.gt(0).all())

    def _load_from_state_dict(self, *args, **kwargs):  # new weights -> new tables
        self._probabilities = None
        super()._load_from_state_dict(*args, **kwargs)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_probabilities"] = None
        return state

    def probabilities(self) -> np.ndarray:
        """counts / TOTAL as float64 (exact: TOTAL is a power of two), built once per table state."""
        if self._probabilities is None:
            self._probabilities = self.counts.cpu().numpy().astype(np.float64) / TOTAL
        return self._probabilities

    def residuals(self, z: np.ndarray, first_row: int) -> tuple[np.ndarray, np.ndarray]:
        """z^ (C, h, w) -> (table columns residual + 2k, activity classes), each (C, h, w) int64."""
        weights = self.weights[first_row: first_row + z.shape[0]].cpu().numpy()
        mean, classes = predict(neighbour_taps(z), weights, self.half_width)
        return np.asarray(z, dtype=np.int64) - mean + 2 * self.half_width, classes

    def bits(self, z: np.ndarray, first_row: int) -> float:
        """The information content of z^ (C, h, w) under the model, in bits."""
        return self.residual_bits(*self.residuals(z, first_row), first_row)

    def residual_bits(self, columns: np.ndarray, classes: np.ndarray, first_row: int) -> float:
        """The information content of what `residuals` gave, in bits."""
        rows = np.arange(first_row, first_row + columns.shape[0])[:, None, None]
        counts = self.counts.cpu().numpy()[rows, classes, columns]
        return float(-np.log2(counts / TOTAL).sum())

    def min_bits(self, first_row: int, channels: int) -> float:
        """The fewest bits one position of z^ (all `channels` of it) adds to a stream."""
        counts = self.counts[first_row: first_row + channels].cpu().numpy()
        return sum(min(min_bits_of_counts(table) for table in row) for row in counts)

    def write(self, writer, columns: np.ndarray, classes: np.ndarray, first_row: int) -> None:
        """Code z^'s residuals (what `residuals` gave, each (C, h, w)) into a SymbolWriter: positions in
        raster order, all channels of each."""
        probabilities = self.probabilities()
        rows = np.arange(first_row, first_row + columns.shape[0])
        for i in range(columns.shape[1]):  # one chunk per row of z^ keeps the probability arrays small
            symbols = columns[:, i, :].T.reshape(-1)
            table_rows = probabilities[rows[None, :], classes[:, i, :].T].reshape(-1, probabilities.shape[-1])
            writer.write_with_probabilities(symbols, table_rows)

    def read(self, reader, channels: int, height: int, width: int, first_row: int) -> np.ndarray:
        """What `write` wrote -> z^ (channels, height, width) int64; raises CorruptFileError on a value
        out of range."""
        k = self.half_width
        weights = self.weights[first_row: first_row + channels].cpu().numpy()
        probabilities = self.probabilities()[first_row: first_row + channels]
        rows = np.arange(channels)
        z = np.zeros((channels, height, width), dtype=np.int64)
        for i in range(height):
            for j in range(width):
                mean, classes = predict(taps_at(z, i, j), weights, k)
                values = reader.read_with_probabilities(probabilities[rows, classes]) - 2 * k + mean
                if np.abs(values).max() > k:
                    raise CorruptFileError("file is corrupted (a hyper-latent value is out of range)")
                z[:, i, j] = values
        return z
