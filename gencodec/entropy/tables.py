"""Integer probability tables, the form in which priors travel in a model file.

The decoder must use bit-for-bit the probabilities the encoder used. Tables
are therefore computed once (at model build or export), quantised to integer
counts that sum to 2**PRECISION, and stored in the model file. Coding never
evaluates a floating-point special function.
"""

from __future__ import annotations

import numpy as np
import torch

PRECISION = 16
TOTAL = 1 << PRECISION


def quantize_pmf(pmf: torch.Tensor) -> torch.Tensor:
    """Rows of probabilities (..., n) -> int32 counts, each >= 1, each row summing to TOTAL.

    Every entry keeps at least one count so that any symbol, however
    unlikely, can still be coded; the rounding remainder goes to the most
    probable entry, where it changes the rate least.
    """
    pmf = pmf.double().clamp_min(0)
    pmf = pmf / pmf.sum(-1, keepdim=True).clamp_min(1e-300)
    n = pmf.shape[-1]
    if n > TOTAL:
        raise ValueError(f"a table of {n} entries cannot be coded at {PRECISION}-bit precision")
    counts = torch.floor(pmf * (TOTAL - n)).long() + 1
    remainder = TOTAL - counts.sum(-1, keepdim=True)
    top = pmf.argmax(-1, keepdim=True)
    counts.scatter_add_(-1, top, remainder)
    return counts.to(torch.int32)


def counts_to_probabilities(counts: np.ndarray) -> np.ndarray:
    """int counts -> float64 probabilities, exact (TOTAL is a power of two)."""
    return np.asarray(counts, dtype=np.float64) / TOTAL


def information_bits(counts: np.ndarray, symbols: np.ndarray) -> float:
    """Sum of -log2 p(symbol) under one table row."""
    p = counts_to_probabilities(counts)[symbols]
    return float(-np.log2(p).sum())
