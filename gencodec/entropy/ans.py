"""All symbols of an image in one constriction ANS stream.

The writer collects chunks in *decoding* order (each: integer symbols and the
table they are coded with) and encodes them in reverse at the end, since ANS
is a stack. The reader decodes chunks in the same order and, at the end,
checks that the stream was used up exactly: a damaged stream almost never
ends exactly where the model says it should.
"""

from __future__ import annotations

import numpy as np
from constriction import stream

from ..errors import CorruptFileError
from .escape import ESCAPE_BITS, ESCAPE_SIZE
from .tables import TOTAL, counts_to_probabilities

# Words travel little-endian whatever the host's byte order.
_WORD = np.dtype("<u4")


class CategoricalTable:
    """One integer table and its constriction model, built once and reused."""

    def __init__(self, counts: np.ndarray):
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 1 or counts.size < 2 or counts.min() < 1 or counts.sum() != TOTAL:
            raise ValueError("a coding table needs >= 2 entries, each >= 1, summing to TOTAL")
        self.counts = counts
        self.model = stream.model.Categorical(counts_to_probabilities(counts), perfect=False)

    def information_bits(self, symbols: np.ndarray) -> float:
        return float(-np.log2(self.counts[symbols] / TOTAL).sum())


_ESCAPE_MODEL = stream.model.Uniform(ESCAPE_SIZE)


class SymbolWriter:
    def __init__(self) -> None:
        self._chunks: list[tuple[np.ndarray, object]] = []
        self.information_bits = 0.0  # the model's information content of all symbols written

    def write(self, symbols: np.ndarray, table: CategoricalTable) -> None:
        symbols = np.ascontiguousarray(symbols, dtype=np.int32)
        if symbols.size:
            self._chunks.append((symbols, table.model))
            self.information_bits += table.information_bits(symbols)

    def write_escapes(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=np.int32)
        if values.size:
            self._chunks.append((values, _ESCAPE_MODEL))
            self.information_bits += ESCAPE_BITS * values.size

    def finish(self) -> bytes:
        coder = stream.stack.AnsCoder()
        for symbols, model in reversed(self._chunks):
            coder.encode_reverse(symbols, model)
        return coder.get_compressed().astype(_WORD).tobytes()


class SymbolReader:
    """Decodes what a SymbolWriter wrote; every failure becomes a CorruptFileError."""

    def __init__(self, payload: bytes):
        words = np.frombuffer(payload, dtype=_WORD).astype(np.uint32)
        try:
            self._coder = stream.stack.AnsCoder(words)
        except ValueError as exc:  # e.g. "ANS compressed data never ends in a zero word"
            raise CorruptFileError(f"file is corrupted (invalid entropy-coded data: {exc})") from None

    def read(self, count: int, table: CategoricalTable) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int32)
        return self._decode(table.model, count)

    def read_escapes(self, count: int) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int32)
        return self._decode(_ESCAPE_MODEL, count)

    def _decode(self, model, count: int) -> np.ndarray:
        try:
            return np.asarray(self._coder.decode(model, count), dtype=np.int32)
        except BaseException as exc:  # constriction panics are BaseExceptions
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise CorruptFileError("file is corrupted (entropy decoding failed)") from None

    def finish(self) -> None:
        if not self._coder.is_empty():
            raise CorruptFileError("file is corrupted (entropy-coded data does not end where it should)")
