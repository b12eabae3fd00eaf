"""Escape coding: how a symbol beyond its table's range is still coded losslessly.

A table covers s in [-k, k] plus one escape entry. An escaped symbol is
followed (later in the same ANS stream) by its overflow m = |s| - k - 1 and
sign, as one uniform value 2*m + sign over 2**ESCAPE_BITS. Residuals are
clamped to +-MAX_RESIDUAL before rounding, so m always fits. Escapes are rare
(the tables reach 5 sigma), so their cost hardly matters; simplicity does.
"""

from __future__ import annotations

import numpy as np

ESCAPE_BITS = 17
ESCAPE_SIZE = 1 << ESCAPE_BITS
MAX_RESIDUAL = float(1 << 15)


def split_escapes(symbols: np.ndarray, half_width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map integer symbols to table columns 0..2k+1 and collect the escape payloads.

    Returns (columns, escape_values) where columns[i] = s + k when |s| <= k,
    else 2k + 1 (the escape entry), and escape_values lists 2*m + sign for
    the escaped symbols in order. Works in int32 (symbols are clamped to
    +-MAX_RESIDUAL): a large image has tens of millions of them.
    """
    symbols = symbols.astype(np.int32, copy=False)
    half_width = np.broadcast_to(np.asarray(half_width, dtype=np.int32), symbols.shape)
    escaped = np.abs(symbols) > half_width
    columns = symbols + half_width
    columns[escaped] = 2 * half_width[escaped] + 1
    overflow = np.abs(symbols[escaped]) - half_width[escaped] - 1
    if overflow.size and overflow.max() >= ESCAPE_SIZE // 2:
        raise ValueError("latent value too large to code; clamp residuals to MAX_RESIDUAL")
    values = 2 * overflow + (symbols[escaped] < 0)
    return columns, values.astype(np.int32)


def merge_escapes(columns: np.ndarray, half_width: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The inverse of split_escapes (int32)."""
    half_width = np.broadcast_to(np.asarray(half_width, dtype=np.int32), columns.shape)
    symbols = columns.astype(np.int32) - half_width
    escaped = columns == 2 * half_width + 1
    values = values.astype(np.int32)
    magnitude = values // 2 + half_width[escaped] + 1
    symbols[escaped] = np.where(values % 2 == 1, -magnitude, magnitude)
    return symbols
