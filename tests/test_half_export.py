"""Half-precision export: half the file, and exactly the model the rounded weights make."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from gencodec.codec import Codec
from gencodec.pretrained import load_model
from gencodec.training.export import export_model, round_to_half

from .conftest import smooth_image


def _size(folder):
    return sum(f.stat().st_size for f in folder.iterdir())


def test_half_export_halves_the_file_and_keeps_tables_exact(generative_codec, tmp_path):
    export_model(generative_codec.model, tmp_path / "full", trained_steps=3)
    export_model(generative_codec.model, tmp_path / "half", trained_steps=3, half=True)
    assert _size(tmp_path / "half") < 0.6 * _size(tmp_path / "full")
    state = load_file(str(tmp_path / "half" / "diffusion_pytorch_model.safetensors"))
    assert any(v.dtype == torch.float16 for v in state.values())
    assert all(v.dtype != torch.float16 for k, v in state.items() if k.endswith("counts"))

    loaded = load_model(tmp_path / "half")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert int(loaded.config.trained_steps) == 3
    # The folder holds exactly the rounded model: same weights, same tables, same files.
    rounded = generative_codec.model.__class__.from_config(generative_codec.model.config)
    rounded.load_state_dict(generative_codec.model.state_dict())
    round_to_half(rounded)
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
