"""Smaller model files: float16 or int8 weights, each exactly the model its rounded weights make."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gencodec.codec import Codec
from gencodec.pretrained import load_model
from gencodec.training.export import export_model
from gencodec.weight_storage import SCALE_SUFFIX, from_int8, int8_parts, round_weights

from .conftest import smooth_image


def _size(folder):
    return sum(f.stat().st_size for f in folder.iterdir())


@pytest.mark.parametrize("precision, ratio", [("float16", 0.6), ("int8", 0.4)])
def test_a_smaller_file_holds_exactly_the_rounded_model(generative_codec, tmp_path, precision, ratio):
    export_model(generative_codec.model, tmp_path / "full", trained_steps=3)
    export_model(generative_codec.model, tmp_path / precision, trained_steps=3, weights=precision)
    assert _size(tmp_path / precision) < ratio * _size(tmp_path / "full")
    state = load_file(str(tmp_path / precision / "diffusion_pytorch_model.safetensors"))
    assert any(v.dtype == (torch.int8 if precision == "int8" else torch.float16) for v in state.values())
    assert all(v.dtype not in (torch.int8, torch.float16) for k, v in state.items() if k.endswith("counts"))

    loaded = load_model(tmp_path / precision)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert int(loaded.config.trained_steps) == 3
    # The folder holds exactly the rounded model: same weights, same tables, same files.
    rounded = generative_codec.model.__class__.from_config(generative_codec.model.config)
    rounded.load_state_dict(generative_codec.model.state_dict())
    round_weights(rounded, precision)
    rounded.update_tables()
    rounded.register_to_config(trained_steps=3)
    for (name, a), b in zip(rounded.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    image = smooth_image(96, 128, seed=5)
    ours, theirs = Codec(loaded, device="cpu"), Codec(rounded.eval(), device="cpu")
    for level in (0, 3):
        data = ours.compress(image, level=level)
        assert data == theirs.compress(image, level=level)
        np.testing.assert_array_equal(np.asarray(ours.decompress(data, realism=1, steps=1)),
                                      np.asarray(theirs.decompress(data, realism=1, steps=1)))


def test_int8_keeps_each_output_channel_within_half_a_step():
    torch.manual_seed(0)
    w = torch.randn(16, 8, 3, 3) * torch.logspace(-3, 1, 16).view(-1, 1, 1, 1)  # channels of very unequal size
    q, scale = int8_parts(w)
    assert q.dtype == torch.int8 and scale.dtype == torch.float16 and q.abs().max() <= 127
    error = (from_int8(q, scale) - w).abs().reshape(16, -1).amax(1)
    assert (error <= 0.5 * scale.float() * 1.01).all()


def test_the_int8_file_names_its_scales(generative_codec, tmp_path):
    export_model(generative_codec.model, tmp_path / "int8", trained_steps=3, weights="int8")
    state = load_file(str(tmp_path / "int8" / "diffusion_pytorch_model.safetensors"))
    quantized = [k for k, v in state.items() if v.dtype == torch.int8]
    assert quantized and all(k + SCALE_SUFFIX in state for k in quantized)
