"""A file decodes into exactly the symbols its encoder wrote, whatever the encoder's float path.

Each test changes the encoder's floating-point path (thread count, batch
composition, float64 transforms, GPU) and checks that the decoder, run in
its default setting, recovers every z^ symbol, every scale index and every
y symbol that the encoder used. The pixels are a weaker promise, tested last:
bit-exact for one thread count, close across thread counts.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from gencodec.codec import Codec
from gencodec.imageio import image_to_tensor

from .conftest import smooth_image


def _assert_decodes_exactly(decoder: Codec, code, data):
    decoded, _ = decoder.decode_code(data)
    assert torch.equal(decoded.z_hat, code.z_hat)
    assert torch.equal(decoded.indexes, code.indexes)
    assert torch.equal(decoded.symbols, code.symbols)


def _encode(codec: Codec, image, level):
    code, h, w = codec.analyse(image, level)
    return code, codec.encode_code(code, level, h, w)


@pytest.mark.parametrize("enc_threads,dec_threads", [(1, 2), (2, 1)])
def test_other_thread_counts(rich_codec, photo, enc_threads, dec_threads):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(enc_threads)
        code, data = _encode(rich_codec, photo, 3)
        torch.set_num_threads(dec_threads)
        _assert_decodes_exactly(rich_codec, code, data)
    finally:
        torch.set_num_threads(threads)


def test_image_alone_against_image_in_a_batch(rich_codec):
    """The analysis of a batch of three, then each image coded: every file decodes exactly."""
    model = rich_codec.model
    images = [smooth_image(128, 128, seed=s) for s in (3, 4, 5)]
    batch = torch.cat([image_to_tensor(im) for im in images])
    with torch.no_grad():
        y_batch = model.analysis(batch)
        y_alone = model.analysis(batch[1:2])
    for y in (y_batch[1:2], y_alone):
        code = model.latent_codec.analyse(y, 4)
        data = rich_codec.encode_code(code, 4, 128, 128)
        _assert_decodes_exactly(rich_codec, code, data)


def test_float64_encoder_float32_decoder(rich_codec, photo):
    encoder64 = Codec(copy.deepcopy(rich_codec.model).double(), device="cpu")
    assert encoder64.fingerprint16 != rich_codec.fingerprint16  # a different float path ...
    code64, h, w = encoder64.analyse(photo, 6)
    code32, _, _ = rich_codec.analyse(photo, 6)
    # ... that really perturbs the encoder (otherwise this test would prove nothing).
    with torch.no_grad():
        x = image_to_tensor(photo)
        y32 = rich_codec.model.analysis(x)
        y64 = encoder64.model.analysis(x.double())
    assert not torch.equal(y32.double(), y64)
    # The integer path from z^ to indexes gives the float32 model's exact indexes.
    assert torch.equal(rich_codec.model.latent_codec.scale_net.indexes(code64.z_hat[None], 6)[0], code64.indexes)
    # A file from the float64 encoder, stamped with the float32 model's fingerprint, decodes exactly.
    data = rich_codec.encode_code(code64, 6, h, w)
    _assert_decodes_exactly(rich_codec, code64, data)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_encoder_cpu_decoder_and_back(rich_codec, photo):
    gpu = Codec(copy.deepcopy(rich_codec.model), device="cuda")
    assert gpu.fingerprint16 == rich_codec.fingerprint16
    for encoder, decoder in ((gpu, rich_codec), (rich_codec, gpu)):
        code, data = _encode(encoder, photo, 2)
        _assert_decodes_exactly(decoder, code, data)


def test_pixels_are_bit_exact_for_one_thread_count_and_close_across_them(generative_codec):
    """What --help and docs/python-api.md promise: the same file, seed and steps give the same pixels with the
    same number of threads; with another, at most a few values move, by a level or so."""
    data = generative_codec.compress(smooth_image(96, 128, seed=2), level=1)
    threads = torch.get_num_threads()
    decoded = {}
    try:
        for n in (1, 2, 1):
            torch.set_num_threads(n)
            image = np.asarray(generative_codec.decompress(data, realism=1.0, seed=3)).astype(int)
            if n in decoded:
                assert np.array_equal(image, decoded[n])
            decoded[n] = image
    finally:
        torch.set_num_threads(threads)
    moved = np.abs(decoded[1] - decoded[2])
    assert moved.max() <= 4 and (moved > 0).mean() < 0.001
