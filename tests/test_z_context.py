"""The z context (gencodec.entropy.z_context): exact coding, honest rates, refused damage, and a model
folder that gains one without any decoded picture changing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from gencodec.entropy.ans import SEAL_BITS, SymbolReader, SymbolWriter
from gencodec.entropy.z_context import ZContextPrior, neighbour_taps, predict, taps_at
from gencodec.errors import CorruptFileError, ModelNotFoundError
from gencodec.training.z_context_fit import fit, hyper_latents, write_model_folder

from .conftest import make_rich_model, smooth_image

K = 8


def correlated_z(channels: int, height: int, width: int, seed: int) -> np.ndarray:
    """Integer fields in [-K, K] whose neighbours agree, as a hyper-latent's do."""
    rng = np.random.default_rng(seed)
    smooth = np.cumsum(np.cumsum(rng.normal(0, 0.7, (channels, height, width)), 1), 2) / 3
    return np.clip(np.round(smooth), -K, K).astype(np.int64)


def iid_bits(z: np.ndarray) -> float:
    """What z costs coded value by value under each channel's own histogram (a context-free ideal)."""
    total = 0.0
    for channel in z:
        _, counts = np.unique(channel, return_counts=True)
        total -= float((counts * np.log2(counts / channel.size)).sum())
    return total


def code(prior: ZContextPrior, z: np.ndarray) -> tuple[bytes, float]:
    writer = SymbolWriter((64, 48))
    prior.write(writer, *prior.residuals(z, 0), 0)
    return writer.finish(), writer.information_bits


def test_z_is_coded_exactly_and_the_context_earns_its_bits():
    channels, height, width = 6, 12, 16
    prior = fit([[correlated_z(channels, height, width, seed)] for seed in range(8)], 1, channels, K)
    assert prior.tables_ready
    z = correlated_z(channels, height, width, seed=100)
    payload, bits = code(prior, z)
    reader = SymbolReader(payload, (64, 48))
    assert np.array_equal(prior.read(reader, channels, height, width, 0), z)
    reader.finish()
    assert bits == pytest.approx(prior.bits(z, 0) + SEAL_BITS)
    assert len(payload) * 8 <= bits * 1.01 + 64
    # Neighbours predict: the held-out field costs well under its own value-by-value entropy.
    assert prior.bits(z, 0) < 0.8 * iid_bits(z)


@pytest.mark.parametrize("shape", [(5, 7, 9), (3, 1, 6), (3, 6, 1), (2, 1, 1)])
def test_the_decoder_predicts_exactly_what_the_encoder_did(shape):
    """The encoder takes every position's taps at once, the decoder one position at a time: the edge rule
    and the integer formula are the same, so no mean or table depends on how it was computed."""
    rng = np.random.default_rng(3)
    weights = rng.integers(-6000, 6000, (shape[0], 5)).astype(np.int32)
    z = correlated_z(*shape, seed=4) + 1  # no zeros at the edges, where a wrong rule would hide
    taps = neighbour_taps(z)
    mean, classes = predict(taps, weights, K)
    for i in range(shape[1]):
        for j in range(shape[2]):
            later = z.copy()
            later.reshape(shape[0], -1)[:, i * shape[2] + j:] = 99  # not decoded yet: never looked at
            assert np.array_equal(taps_at(later, i, j), taps[:, :, i, j])
            m, c = predict(taps_at(later, i, j), weights, K)
            assert np.array_equal(m, mean[:, i, j]) and np.array_equal(c, classes[:, i, j])
    assert np.abs(mean).max() <= K


def test_a_value_out_of_range_is_refused():
    channels = 3
    prior = fit([[correlated_z(channels, 6, 6, seed)] for seed in range(4)], 1, channels, K)
    prior.weights.zero_()  # every mean 0: a residual of 2K makes z = 2K, beyond [-K, K]
    prior._probabilities = None
    writer = SymbolWriter((64, 48))
    rows = prior.probabilities()[np.arange(channels), 0]
    writer.write_with_probabilities(np.full(channels, 4 * K), rows)
    reader = SymbolReader(writer.finish(), (64, 48))
    with pytest.raises(CorruptFileError, match="out of range"):
        prior.read(reader, channels, 6, 6, 0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A model folder without a z context and the same model with one fitted."""
    from gencodec.codec import Codec
    model = make_rich_model()
    root = tmp_path_factory.mktemp("zcontext")
    model.save_pretrained(root / "plain")
    codec = Codec(model, device="cpu")
    images = [Image.fromarray(smooth_image(256, 256, seed)) for seed in range(4)]
    lc = model.latent_codec
    prior = fit(hyper_latents(codec, images), model.n_levels, lc.hyper_latent_channels, lc.z_prior.half_width)
    write_model_folder(root / "plain", root / "context", prior)
    return root / "plain", root / "context"


def test_a_fitted_context_changes_the_files_not_the_pictures(folders):
    import gencodec
    plain, context = (gencodec.load(folder, device="cpu") for folder in folders)
    assert context.model.latent_codec.z_context is not None and plain.model.latent_codec.z_context is None
    assert context.model.fingerprint() != plain.model.fingerprint()
    photo = Image.fromarray(smooth_image(200, 264, seed=9))
    for level in (0, 7):
        a, b = plain.compress(photo, level=level), context.compress(photo, level=level)
        assert a != b
        assert np.array_equal(np.asarray(plain.decompress(a)), np.asarray(context.decompress(b)))
        with pytest.raises(Exception, match="model"):  # each file names the model that wrote it
            plain.decompress(b)


def test_the_folder_keeps_every_stored_tensor(folders):
    plain, context = folders
    before, after = load_file(str(plain / "diffusion_pytorch_model.safetensors")), \
        load_file(str(context / "diffusion_pytorch_model.safetensors"))
    assert set(after) - set(before) == {"latent_codec.z_context.weights", "latent_codec.z_context.counts"}
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert json.loads((context / "config.json").read_text())["z_context"] is True


def test_an_unfitted_context_is_refused_at_load(folders, tmp_path):
    import gencodec
    _, context = folders
    prior = ZContextPrior(1, K)  # the wrong size would be refused too; zero tables are the case here
    state = load_file(str(context / "diffusion_pytorch_model.safetensors"))
    state["latent_codec.z_context.counts"].zero_()
    from safetensors.torch import save_file
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((context / "config.json").read_text())
    save_file(state, str(broken / "diffusion_pytorch_model.safetensors"))
    assert not prior.tables_ready
    with pytest.raises(ModelNotFoundError, match="fit_z_context"):
        gencodec.load(broken, device="cpu")


def test_a_warm_start_leaves_the_context_behind(folders):
    """Training moves z^, so a context fitted to the codec before it is never carried into a stage."""
    from gencodec.pretrained import load_model, untrained_model
    _, context = folders
    fresh = untrained_model(generative_decoder=None)
    assert fresh.load_warm_start(load_model(context).state_dict()) == []
    assert fresh.latent_codec.z_context is None


def test_copied_levels_take_their_context_rows(folders):
    from gencodec.pretrained import load_model
    _, context = folders
    lc = load_model(context).latent_codec
    cz = lc.hyper_latent_channels
    weights, counts = lc.z_context.weights.clone(), lc.z_context.counts.clone()
    lc.copy_levels([3, 3, 3, 3, 4, 5, 6, 7])
    assert torch.equal(lc.z_context.weights[:cz], weights[3 * cz: 4 * cz])
    assert torch.equal(lc.z_context.counts[cz: 2 * cz], counts[3 * cz: 4 * cz])
    assert torch.equal(lc.z_context.counts[7 * cz:], counts[7 * cz:])


def test_z_is_coded_the_cheaper_way_and_either_way_decodes(folders):
    """The encoder codes z^ with the context or with the factorized prior, whichever is cheaper (a tiny
    grid of z^ can favour the latter), and says which in one bit: never more than that bit over the
    model without the context."""
    import gencodec
    plain, context = (gencodec.load(folder, device="cpu") for folder in folders)
    lc = context.model.latent_codec
    chose = set()
    for height, width, seed in [(64, 64, 1), (128, 96, 2), (256, 320, 3), (384, 512, 4)]:
        photo = Image.fromarray(smooth_image(height, width, seed))
        for level in (0, 7):
            code, h, w = context.analyse(photo, level)
            _, plain_bits = plain.model.latent_codec.encode(code, level, (w, h))
            payload, bits = lc.encode(code, level, (w, h))
            assert bits <= plain_bits + 1 + 1e-6
            cz = lc.hyper_latent_channels
            chose.add(lc.z_context.bits(code.z_hat.numpy(), level * cz) <= lc._factorized_z_bits(
                code.z_hat[None], torch.tensor([level]))[0].item())
            decoded = lc.decode(payload, level, *code.symbols.shape[-2:], (w, h), with_colour_offset=False)
            assert torch.equal(decoded.z_hat, code.z_hat) and torch.equal(decoded.symbols, code.symbols)
    assert chose == {True, False}, "both ways of coding z^ should be exercised"


def test_damage_behind_a_valid_checksum_is_caught_with_the_context(folders):
    """Flipped bits in a context-coded stream, the checksum forged to match: refused with a clear error
    (mostly by the end-of-stream check or a value out of range), never a crash."""
    import random

    import gencodec
    from gencodec import bitstream
    from gencodec.errors import GencodecError
    codec = gencodec.load(folders[1], device="cpu")
    data = codec.compress(Image.fromarray(smooth_image(256, 384, seed=5)), level=0)
    rng = random.Random(2)
    caught = 0
    for _ in range(100):
        body = bytearray(data[: -bitstream.CHECKSUM_BYTES])
        position = rng.randrange(bitstream.HEADER_BYTES, len(body))
        body[position] ^= 1 << rng.randrange(8)
        try:
            codec.decompress(bytes(body) + bitstream.crc16(bytes(body)).to_bytes(2, "big"), realism=0)
        except GencodecError as exc:
            assert "\n" not in str(exc)
            caught += 1
    assert caught >= 90


def test_the_script_fits_every_coding_level_of_a_model_with_rungs(folders, tmp_path, capsys):
    """A ladder of rungs has its own number of file levels: the context is fitted per coding level."""
    import gencodec
    from .conftest import load_script
    plain, _ = folders
    with_rungs = tmp_path / "rungs"
    shutil.copytree(plain, with_rungs)
    config = json.loads((with_rungs / "config.json").read_text())
    config["rungs"] = [[2, 4, 7], [7, 1, None]]
    (with_rungs / "config.json").write_text(json.dumps(config))
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(3):
        Image.fromarray(smooth_image(128, 160, seed)).save(photos / f"{seed}.png")
    script = load_script("fit_z_context")
    assert script.main(["--model", str(with_rungs), "--data", str(photos), "--photos", "2", "--held-out", "1",
                        "--out", str(tmp_path / "fitted")]) == 0
    codec = gencodec.load(tmp_path / "fitted", device="cpu")
    assert codec.n_levels == 2 and codec.model.latent_codec.z_context is not None
    assert f"at {codec.model.n_levels} coding levels" in capsys.readouterr().out
    photo = smooth_image(96, 128, seed=4)
    assert np.asarray(codec.decompress(codec.compress(photo, level=1), realism=0)).shape == photo.shape
