"""gencodec.nn.taef2: the layer structure from scratch, and the pretrained weights' check values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from gencodec.errors import ModelNotFoundError
from gencodec.nn.taef2 import (
    DECODER_FILE,
    ENCODER_FILE,
    PoolBlock,
    SoftClamp,
    TAEF2Decoder,
    TAEF2Encoder,
    load_taef2,
)

from .conftest import KODAK, LPIPS_WEIGHTS, SHARED

TAEF2 = SHARED / "weights" / "taef2"


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------ from scratch

def test_encoder_structure():
    shapes = {k: tuple(v.shape) for k, v in TAEF2Encoder().state_dict().items()}
    assert shapes["0.weight"] == (64, 3, 3, 3)
    assert shapes["1.conv.4.weight"] == (64, 64, 3, 3)
    assert shapes["2.weight"] == (64, 64, 3, 3) and "2.bias" not in shapes  # stride-2 convs: no bias
    assert "9.pool.0.weight" not in shapes and shapes["11.pool.0.weight"] == (256, 64, 1, 1)
    assert shapes["13.pool.1.weight"] == (256,) and shapes["13.pool.3.weight"] == (64, 256, 1, 1)
    assert shapes["14.weight"] == (32, 64, 3, 3) and "15.weight" not in shapes
    assert len(shapes) == 79
    assert n_params(TAEF2Encoder()) == pytest.approx(1.34e6, rel=0.005)


def test_decoder_structure():
    decoder = TAEF2Decoder()
    shapes = {k: tuple(v.shape) for k, v in decoder.state_dict().items()}
    assert isinstance(decoder[0], SoftClamp) and isinstance(decoder[5], PoolBlock)
    assert shapes["1.weight"] == (64, 32, 3, 3)
    assert shapes["5.pool.1.bias"] == (256,)
    for index in (7, 12, 17):  # the convs after each upsample have no bias
        assert shapes[f"{index}.weight"] == (64, 64, 3, 3) and f"{index}.bias" not in shapes
    assert shapes["18.conv.0.weight"] == (64, 64, 3, 3) and "18.pool.0.weight" not in shapes
    assert shapes["19.weight"] == (3, 64, 3, 3)
    assert len(shapes) == 79
    assert n_params(decoder) == pytest.approx(1.34e6, rel=0.005)


def test_shapes_and_range():
    torch.manual_seed(0)
    encoder, decoder = TAEF2Encoder().eval(), TAEF2Decoder().eval()
    with torch.no_grad():
        z = encoder(torch.rand(2, 3, 64, 96))
        image = decoder(10 * torch.randn(2, 32, 8, 12))  # far outside the latent range
    assert z.shape == (2, 32, 8, 12)
    assert image.shape == (2, 3, 64, 96)
    assert image.min() >= 0 and image.max() <= 1  # the clamp is inside forward


def test_soft_clamp():
    x = torch.tensor([-100.0, -1.0, 0.0, 0.1, 100.0])
    y = SoftClamp()(x)
    assert y.abs().max() <= 3 and y[2] == 0
    assert y[3] == pytest.approx(0.1, abs=1e-3)  # nearly the identity near 0


def test_imports_only_torch_at_top_level():
    """The module is part of the runtime: safetensors and gencodec.errors are imported by the loader only."""
    import ast

    import gencodec.nn.taef2 as module

    tree = ast.parse(Path(module.__file__).read_text())
    names = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert names == {"__future__", "pathlib", "torch"}


# ------------------------------------------------------------------------------------------ loading errors

def test_missing_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not found") as info:
        load_taef2(tmp_path / "nowhere")
    assert "\n" not in str(info.value)


def test_mismatched_file(tmp_path):
    state = {k: v.contiguous() for k, v in TAEF2Decoder().state_dict().items()}
    save_file(state, str(tmp_path / ENCODER_FILE))  # decoder tensors under the encoder's name
    save_file(state, str(tmp_path / DECODER_FILE))
    with pytest.raises(ModelNotFoundError, match="do not match TAEF2Encoder") as info:
        load_taef2(tmp_path)
    assert "\n" not in str(info.value)


def test_unreadable_file(tmp_path):
    (tmp_path / ENCODER_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ModelNotFoundError, match="unreadable"):
        load_taef2(tmp_path)


# ------------------------------------------------------------------------------------------ pretrained

@pytest.fixture(scope="module")
def taef2():
    if not all((TAEF2 / name).is_file() for name in (ENCODER_FILE, DECODER_FILE)):
        pytest.skip(f"TAEF2 weights not present in {TAEF2}")
    return load_taef2(TAEF2)


@pytest.mark.parametrize("module, name", [(TAEF2Encoder, ENCODER_FILE), (TAEF2Decoder, DECODER_FILE)])
def test_file_keys_match(module, name):
    if not (TAEF2 / name).is_file():
        pytest.skip(f"TAEF2 weights {TAEF2 / name} not present")
    with safe_open(str(TAEF2 / name), "pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    assert shapes == {k: tuple(v.shape) for k, v in module().state_dict().items()}


def test_loaded_frozen_float32(taef2):
    for module in taef2:
        assert not module.training
        assert all(p.dtype == torch.float32 and not p.requires_grad for p in module.parameters())


PHOTOS = ("kodim01", "kodim04", "kodim13", "kodim23")


@pytest.fixture(scope="module")
def round_trips(taef2):
    """{photo: (original, decoded)} as uint8 (H, W, 3), at full size, in float32."""
    from gencodec.imageio import image_to_tensor, load_image, tensor_to_image

    if not all((KODAK / f"{name}.png").is_file() for name in PHOTOS):
        pytest.skip(f"Kodak photos {', '.join(PHOTOS)} not present in {KODAK}")
    encoder, decoder = taef2
    pairs = {}
    for name in PHOTOS:
        image = load_image(KODAK / f"{name}.png")
        with torch.no_grad():
            decoded = decoder(encoder(image_to_tensor(image)))
        pairs[name] = image, tensor_to_image(decoded)  # rounds to uint8
    return pairs


# Each full-size round trip takes several seconds on a 2-core CPU, hence `slow`.
# The README's PSNRs are of the unquantised float output, rounded to 0.01 dB: on it we measure
# kodim23 33.354, kodim01 27.181, mean 28.931. On uint8 (as here) they are 33.342, 27.178 and
# 28.925: rounding to 8 bits costs about 0.01 dB, well inside the 0.05 dB tolerance.
@pytest.mark.slow
def test_psnr_check_values(round_trips):
    from gencodec.evaluation.metrics import psnr

    values = {name: psnr(*pair) for name, pair in round_trips.items()}
    assert values["kodim23"] == pytest.approx(33.35, abs=0.05)
    assert values["kodim01"] == pytest.approx(27.18, abs=0.05)
    assert np.mean(list(values.values())) == pytest.approx(28.93, abs=0.05)


@pytest.mark.slow
def test_lpips_check_values(round_trips):
    from gencodec.evaluation.metrics import lpips
    from gencodec.evaluation.perceptual import load_lpips

    if not LPIPS_WEIGHTS.is_file():
        pytest.skip(f"LPIPS backbone {LPIPS_WEIGHTS} not present")
    net = load_lpips(LPIPS_WEIGHTS)
    values = {name: lpips(net, *pair) for name, pair in round_trips.items()}
    assert values["kodim23"] == pytest.approx(0.024, abs=0.002)
    assert values["kodim01"] == pytest.approx(0.052, abs=0.002)
    assert np.mean(list(values.values())) == pytest.approx(0.052, abs=0.002)
