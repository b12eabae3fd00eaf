"""All symbols of an image in one constriction ANS stream.

The writer collects chunks in *decoding* order (each: integer symbols and the
table they are coded with) and encodes them in reverse at the end, since ANS
is a stack. The reader decodes chunks in the same order and, at the end,
checks that the stream was used up exactly: a damaged stream almost never
ends exactly where the model says it should.

The seal. Every stream is encoded on top of a seal, which is therefore the
last thing decoded: the image's width and height (14 bits each), then one
marker bit. It pins the exact size against the file header, and it lifts the
coder's state at once above 2**32. Two guarantees follow:

- Until its seal is decoded, a real stream's state stays at or above 2**32
  (constriction keeps it there once it is), while a stream that has run dry
  is left with a small state and no words, from which it goes on decoding
  symbols as if nothing were wrong. So running dry is caught after each
  chunk, not at the end, and an empty payload never decodes.
- With the state at or above 2**32, coding a symbol of probability f/2**24
  adds at least 255/256 of its information content to the stream's length
  (the rounding of one ANS step costs less than (2**24 - f) / 2**32 of the
  state). So `min_bits` per symbol, from a table's largest probability, gives
  a hard lower bound on the payload any valid stream of a given size holds:
  `SymbolReader.require` refuses a shorter one before anything is decoded.
"""

from __future__ import annotations

import math

import numpy as np
from constriction import stream

from ..errors import CorruptFileError
from .escape import ESCAPE_BITS, ESCAPE_SIZE
from .tables import TOTAL, counts_to_probabilities

# Words travel little-endian whatever the host's byte order.
_WORD = np.dtype("<u4")

# constriction's categorical models work at 24-bit precision; a table's 16-bit counts are scaled up,
# and its approximate (perfect=False) quantisation may move each entry by a few units of 2**-24.
_ANS_PRECISION = 24
# Of a symbol's information content, the least share a stream's length is sure to grow by (see above).
_ANS_EFFICIENCY = 255 / 256

# The seal (decoded last): width - 1 and height - 1 (14 bits each), then a marker bit that is 1.
_SIDE_BITS = 14
_MARKER_MODEL = stream.model.Uniform(2)
_SIDE_MODEL = stream.model.Uniform(1 << _SIDE_BITS)
SEAL_BITS = 2 * _SIDE_BITS + 1
# Until the seal is decoded, a real stream's state stays at or above 2**32, so at least this many bits
# remain in it; one that has run dry is left with a small state and no words.
_LIVE_BITS = 32


def _seal(image_size: tuple[int, int]) -> np.ndarray:
    width, height = image_size
    if not (1 <= width <= 1 << _SIDE_BITS and 1 <= height <= 1 << _SIDE_BITS):
        raise ValueError(f"image size {width}x{height} cannot be sealed in {_SIDE_BITS}-bit fields")
    return np.array([width - 1, height - 1], dtype=np.int32)


def min_bits_of_counts(counts: np.ndarray) -> float:
    """The fewest bits any symbol of a table (integer counts summing to TOTAL) adds to a stream: from its
    largest probability, with room for constriction's re-quantisation, times the share ANS is sure to
    keep (module docstring)."""
    counts = np.asarray(counts, dtype=np.int64)
    scale = 1 << (_ANS_PRECISION - 16)
    largest = min(int(counts.max()) * scale + counts.size, (1 << _ANS_PRECISION) - (counts.size - 1))
    return _ANS_EFFICIENCY * math.log2((1 << _ANS_PRECISION) / largest)


# Symbols that each have their own table row (float64 probabilities, exact multiples of 2**-16),
# re-quantised by constriction exactly as a CategoricalTable's.
_PER_SYMBOL_TABLES = stream.model.Categorical(perfect=False)


class CategoricalTable:
    """One integer table and its constriction model, built once and reused."""

    def __init__(self, counts: np.ndarray):
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 1 or counts.size < 2 or counts.min() < 1 or counts.sum() != TOTAL:
            raise ValueError("a coding table needs >= 2 entries, each >= 1, summing to TOTAL")
        self.counts = counts
        self.model = stream.model.Categorical(counts_to_probabilities(counts), perfect=False)
        self.min_bits = min_bits_of_counts(counts)

    def information_bits(self, symbols: np.ndarray) -> float:
        return float(-np.log2(self.counts[symbols] / TOTAL).sum())


_ESCAPE_MODEL = stream.model.Uniform(ESCAPE_SIZE)


class SymbolWriter:
    """Collects the chunks of one image's stream; `image_size` (width, height) goes into its seal."""

    def __init__(self, image_size: tuple[int, int]) -> None:
        self._seal = _seal(image_size)
        self._chunks: list[tuple[np.ndarray, object]] = []
        self.information_bits = float(SEAL_BITS)  # the information content of the seal and all symbols

    def write(self, symbols: np.ndarray, table: CategoricalTable) -> None:
        symbols = np.ascontiguousarray(symbols, dtype=np.int32)
        if symbols.size:
            self._chunks.append((symbols, table.model))
            self.information_bits += table.information_bits(symbols)

    def write_with_probabilities(self, symbols: np.ndarray, probabilities: np.ndarray) -> None:
        """Symbols each with its own table row: probabilities (n, k) float64, counts / TOTAL."""
        symbols = np.ascontiguousarray(symbols, dtype=np.int32)
        if symbols.size:
            probabilities = np.ascontiguousarray(probabilities, dtype=np.float64)
            self._chunks.append((symbols, (_PER_SYMBOL_TABLES, probabilities)))
            self.information_bits += float(-np.log2(probabilities[np.arange(symbols.size), symbols]).sum())

    def write_escapes(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=np.int32)
        if values.size:
            self._chunks.append((values, _ESCAPE_MODEL))
            self.information_bits += ESCAPE_BITS * values.size

    def write_uniform(self, values: np.ndarray, size: int) -> None:
        """Integers in [0, size), each coded with probability 1/size."""
        values = np.ascontiguousarray(values, dtype=np.int32)
        if values.size:
            self._chunks.append((values, stream.model.Uniform(size)))
            self.information_bits += values.size * math.log2(size)

    def finish(self) -> bytes:
        coder = stream.stack.AnsCoder()
        coder.encode_reverse(np.ones(1, dtype=np.int32), _MARKER_MODEL)  # state 2**23, then >= 2**37
        coder.encode_reverse(self._seal, _SIDE_MODEL)
        for symbols, model in reversed(self._chunks):
            if isinstance(model, tuple):  # a model family and its parameters per symbol
                coder.encode_reverse(symbols, *model)
            else:
                coder.encode_reverse(symbols, model)
        return coder.get_compressed().astype(_WORD).tobytes()


class SymbolReader:
    """Decodes what a SymbolWriter wrote for an image of `image_size` (width, height); every failure
    becomes a CorruptFileError."""

    def __init__(self, payload: bytes, image_size: tuple[int, int]):
        self._seal = _seal(image_size)
        if not payload:
            raise CorruptFileError("file is corrupted (it holds no entropy-coded data)")
        words = np.frombuffer(payload, dtype=_WORD).astype(np.uint32)
        try:
            self._coder = stream.stack.AnsCoder(words)
        except ValueError as exc:  # e.g. "ANS compressed data never ends in a zero word"
            raise CorruptFileError(f"file is corrupted (invalid entropy-coded data: {exc})") from None

    def require(self, min_bits: float, what: str) -> None:
        """Refuse a stream too short to hold symbols whose least total content is `min_bits`."""
        have = self._coder.num_valid_bits()
        if have < min_bits:
            raise CorruptFileError(f"file is corrupted (its entropy-coded data holds {have} bits, and {what} "
                                   f"needs at least {math.ceil(min_bits)})")

    def read(self, count: int, table: CategoricalTable) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int32)
        return self._decode(table.model, count)

    def read_with_probabilities(self, probabilities: np.ndarray) -> np.ndarray:
        """What write_with_probabilities wrote with these rows (n, k): n symbols."""
        return self._decode(_PER_SYMBOL_TABLES, np.ascontiguousarray(probabilities, dtype=np.float64))

    def read_uniform(self, count: int, size: int) -> np.ndarray:
        """What write_uniform wrote: `count` integers in [0, size)."""
        if count == 0:
            return np.zeros(0, dtype=np.int32)
        return self._decode(stream.model.Uniform(size), count)

    @staticmethod
    def uniform_min_bits(count: int, size: int) -> float:
        """The least a stream grows by for `count` uniform symbols (for `require`; module docstring)."""
        return count * _ANS_EFFICIENCY * math.log2(size)

    def read_escapes(self, count: int) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int32)
        return self._decode(_ESCAPE_MODEL, count)

    def _decode(self, model, count_or_parameters) -> np.ndarray:
        try:
            symbols = np.asarray(self._coder.decode(model, count_or_parameters), dtype=np.int32)
        except BaseException as exc:  # constriction panics are BaseExceptions
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise CorruptFileError("file is corrupted (entropy decoding failed)") from None
        if self._coder.num_valid_bits() < _LIVE_BITS:  # the seal is still to come (module docstring)
            raise CorruptFileError("file is corrupted (entropy-coded data ends too early)")
        return symbols

    def finish(self) -> None:
        """Decode and check the seal, then that the stream ends exactly there."""
        size = self._decode_seal(_SIDE_MODEL, 2)
        marker = self._decode_seal(_MARKER_MODEL, 1)
        if marker[0] != 1:
            raise CorruptFileError("file is corrupted (entropy-coded data ends too early)")
        if not np.array_equal(size, self._seal):
            raise CorruptFileError(f"file is corrupted (the header says {self._seal[0] + 1}x{self._seal[1] + 1}, "
                                   f"the entropy-coded data {size[0] + 1}x{size[1] + 1})")
        if not self._coder.is_empty():
            raise CorruptFileError("file is corrupted (entropy-coded data does not end where it should)")

    def _decode_seal(self, model, count: int) -> np.ndarray:
        try:
            return np.asarray(self._coder.decode(model, count), dtype=np.int32)
        except BaseException as exc:  # constriction panics are BaseExceptions
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise CorruptFileError("file is corrupted (entropy decoding failed)") from None
