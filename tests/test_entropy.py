"""Entropy coding: tables, escapes, the ANS stream, and real size against information content."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gencodec import bitstream
from gencodec.entropy.ans import SEAL_BITS, CategoricalTable, SymbolReader, SymbolWriter
from gencodec.entropy.escape import merge_escapes, split_escapes
from gencodec.entropy.hyperprior import LatentCode
from gencodec.entropy.tables import TOTAL, quantize_pmf
from gencodec.errors import CorruptFileError
from gencodec.imageio import image_to_tensor


def test_quantize_pmf_keeps_every_symbol_codable():
    pmf = torch.tensor([[1.0, 0.0, 1e-12, 3.0], [0.25, 0.25, 0.25, 0.25]])
    counts = quantize_pmf(pmf)
    assert counts.dtype == torch.int32
    assert (counts >= 1).all()
    assert (counts.sum(-1) == TOTAL).all()
    assert counts[0, 3] > counts[0, 0] > counts[0, 1]


def test_gaussian_tables_are_valid(untrained_codec):
    gc = untrained_codec.model.latent_codec.y_conditional
    for i in range(gc.n_scales):
        row = gc.row(i)
        assert row.sum() == TOTAL and (row >= 1).all()
        k = int(gc.half_widths[i])
        assert len(row) == 2 * k + 2
        assert row[k] == row[: 2 * k + 1].max()  # the mode is at s = 0


def test_escape_split_merge_round_trip():
    rng = np.random.default_rng(0)
    half = rng.integers(1, 6, size=500)
    symbols = rng.integers(-40, 40, size=500)
    cols, values = split_escapes(symbols, half)
    assert (cols <= 2 * half + 1).all() and (cols >= 0).all()
    assert len(values) == int((np.abs(symbols) > half).sum())
    np.testing.assert_array_equal(merge_escapes(cols, half, values), symbols)


def test_ans_round_trip_and_exhaustion_check():
    rng = np.random.default_rng(1)
    tables = [CategoricalTable(quantize_pmf(torch.rand(n)).numpy()) for n in (2, 7, 300)]
    chunks = [(rng.integers(0, len(t.counts), size=rng.integers(0, 400)), t) for t in tables for _ in range(3)]
    writer = SymbolWriter((300, 200))
    for symbols, table in chunks:
        writer.write(symbols, table)
    writer.write_escapes(np.array([0, 5, 131071]))
    payload = writer.finish()
    reader = SymbolReader(payload, (300, 200))
    for symbols, table in chunks:
        np.testing.assert_array_equal(reader.read(len(symbols), table), symbols)
    np.testing.assert_array_equal(reader.read_escapes(3), [0, 5, 131071])
    reader.finish()
    # Reading fewer symbols than were written leaves the stream unfinished: detected.
    reader = SymbolReader(payload, (300, 200))
    reader.read(len(chunks[0][0]), chunks[0][1])
    with pytest.raises(CorruptFileError):
        reader.finish()


def _peaked_table(n: int, sharpness: float) -> CategoricalTable:
    return CategoricalTable(quantize_pmf(torch.softmax(torch.linspace(0, sharpness, n), 0)).numpy())


@pytest.mark.parametrize("sharpness", [0.5, 8.0, 40.0])
def test_the_least_bits_of_a_table_are_a_hard_lower_bound(sharpness):
    """However likely the symbols (here, all the table's most or least likely entry, or drawn from
    it), a real stream is at least as long as SymbolReader.require asks, and never empty."""
    rng = np.random.default_rng(2)
    table = _peaked_table(9, sharpness)
    p = table.counts / table.counts.sum()
    for count in (1, 10, 1000, 50_000):
        for symbols in (np.full(count, table.counts.argmax()), np.zeros(count, dtype=np.int64),
                        rng.choice(len(p), size=count, p=p)):
            writer = SymbolWriter((1, 1))
            writer.write(symbols, table)
            payload = writer.finish()
            assert len(payload) >= 4 and 8 * len(payload) >= count * table.min_bits
            reader = SymbolReader(payload, (1, 1))
            reader.require(count * table.min_bits, "them")
            np.testing.assert_array_equal(reader.read(count, table), symbols)
            reader.finish()


def test_a_stream_that_runs_dry_is_caught_at_once_and_an_empty_one_never_decodes():
    table = _peaked_table(5, 40.0)  # its first entry (the most negative symbol) is decoded from state 0
    writer = SymbolWriter((64, 64))
    writer.write(np.full(10, 4), table)
    payload = writer.finish()
    with pytest.raises(CorruptFileError, match="holds no entropy-coded data"):
        SymbolReader(b"", (64, 64))
    with pytest.raises(CorruptFileError, match="ends too early"):  # asked for far more than it holds
        SymbolReader(payload, (64, 64)).read(10_000_000, table)
    with pytest.raises(CorruptFileError, match=r"holds \d+ bits, and all of it needs at least"):
        SymbolReader(payload, (64, 64)).require(10_000_000 * table.min_bits, "all of it")


def test_the_seal_pins_the_exact_image_size():
    table = _peaked_table(5, 1.0)
    writer = SymbolWriter((100, 37))
    writer.write(np.arange(5), table)
    payload = writer.finish()
    for size in ((100, 38), (101, 37), (37, 100)):
        reader = SymbolReader(payload, size)
        reader.read(5, table)
        with pytest.raises(CorruptFileError, match=r"the header says \d+x\d+, the entropy-coded data 100x37"):
            reader.finish()


def test_symbols_round_trip_exactly_including_escapes(rich_codec, photo):
    codec = rich_codec
    code, h, w = codec.analyse(photo, level=5)
    # Push some symbols far outside their tables so the escape path is used.
    symbols = code.symbols.clone()
    symbols.view(-1)[::97] = torch.randint(-30000, 30000, symbols.view(-1)[::97].shape)
    code = LatentCode(code.z_hat, symbols, code.indexes)
    data = codec.encode_code(code, 5, h, w)
    decoded, header = codec.decode_code(data)
    assert torch.equal(decoded.z_hat, code.z_hat)
    assert torch.equal(decoded.indexes, code.indexes)
    assert torch.equal(decoded.symbols, code.symbols)


@pytest.mark.parametrize("level", [0, 4, 7])
def test_file_size_matches_information_content(rich_codec, photo, level):
    """Real bytes = header + checksum + ceil-to-words(information content), within 1%."""
    codec = rich_codec
    code, h, w = codec.analyse(photo, level)
    payload, info_bits = codec.model.latent_codec.encode(code, level, (w, h))
    data = codec.encode_code(code, level, h, w)
    overhead = bitstream.HEADER_BYTES + bitstream.CHECKSUM_BYTES
    assert len(data) == len(payload) + overhead
    # ANS emits whole 32-bit words and flushes its 64-bit state: up to 8 bytes over.
    assert info_bits / 8 * 0.99 <= len(payload) <= info_bits / 8 * 1.01 + 8
    # The evaluation-mode rate estimate of the model is the same information content, but for the seal.
    with torch.no_grad():
        y = codec.model.analysis(image_to_tensor(photo))  # 128x192: no padding needed
        est = codec.model.latent_codec(y, torch.tensor([level]))["bits"].item()
    assert est + SEAL_BITS == pytest.approx(info_bits, rel=1e-4)


def test_copied_levels_code_exactly_like_their_source(photo):
    from .conftest import make_rich_model
    model = make_rich_model()
    # Make z's densities differ by level, so that a copy is visible in the tables.
    with torch.no_grad():
        model.latent_codec.z_prior.biases[-1].add_(torch.randn_like(model.latent_codec.z_prior.biases[-1]))
    model.update_tables()
    lc = model.latent_codec
    y = model.analysis(image_to_tensor(photo))
    before = [lc.encode(lc.analyse(y, level), level, (64, 64))[0] for level in range(model.n_levels)]
    assert before[0] != before[3] and before[5] != before[6]
    sources = [3, 3, 3, 3, 4, 6, 6, 7]
    lc.copy_levels(sources)
    counts_copied = lc.z_prior.counts.clone()
    model.update_tables()  # the copied tables are the ones the copied densities give
    assert torch.equal(counts_copied, lc.z_prior.counts)
    for level, source in enumerate(sources):
        assert lc.encode(lc.analyse(y, level), level, (64, 64))[0] == before[source]
    gains = lc.log_gain.detach().clone()
    z_gains = lc.log_z_gain.detach().clone()
    offsets = [-1.0, -0.5, 0, 0, 0, 0, 0, 0.25]
    lc.copy_levels(list(range(8)), log_gain_offsets=offsets, log_z_gain_offsets=offsets[::-1])
    assert torch.allclose(lc.log_gain - gains, torch.tensor(offsets)[:, None])
    assert torch.allclose(lc.log_z_gain - z_gains, torch.tensor(offsets[::-1])[:, None])
    with pytest.raises(ValueError, match="needs 8 gain offsets"):
        lc.copy_levels(list(range(8)), log_gain_offsets=[0.0])
    with pytest.raises(ValueError, match="needs 8 source levels"):
        lc.copy_levels([0, 1])
    with pytest.raises(ValueError, match="needs 8 source levels"):
        lc.copy_levels([0] * 7 + [8])


def test_z_is_clamped_to_its_tables_range(photo):
    """A hyper-analysis that outputs huge values still gives z^ within +-half_width, in training and in
    files: beyond it the training rate cannot see the escape's cost (HyperpriorLatentCodec._z_scaled)."""
    from gencodec.pretrained import untrained_model

    model = untrained_model(generative_decoder=None)
    codec = model.latent_codec
    with torch.no_grad():
        codec.hyper_analysis.layers[-1].weight.mul_(1e4)
    k = codec.z_prior.half_width
    with torch.no_grad():
        y = model.analysis(image_to_tensor(photo)[..., :128, :128])
        code = codec.analyse(y, 0)
        assert code.z_hat.abs().max() == k  # pinned at the edge, not escaped
        codec.train()
        out = codec(y, torch.tensor([0]))
        codec.eval()
    assert torch.isfinite(out["bits_z"]).all()
    payload, bits = codec.encode(code, 0, (128, 128))
    assert codec.decode(payload, 0, *y.shape[-2:], (128, 128)).z_hat.equal(code.z_hat)
