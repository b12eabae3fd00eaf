"""train/export.py --denoiser-from: a model's codec with another model's generative decoder."""

from __future__ import annotations

import pytest
import torch

from gencodec.errors import GencodecError
from gencodec.pretrained import load_model, untrained_model

from .conftest import SMALL, TINY_DECODER, load_script


def _saved(folder, seed, **kwargs):
    """An untrained model whose weights are moved by noise from `seed` (an untrained model is always the same)."""
    model = untrained_model(**SMALL, **kwargs)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.parameters():
            tensor.add_(0.01 * torch.randn(tensor.shape, generator=generator))
    model.save_pretrained(folder)
    return folder


def test_the_denoiser_comes_from_the_donor_and_the_codec_stays(tmp_path):
    codec = _saved(tmp_path / "codec", 0, generative_decoder=TINY_DECODER)
    donor = _saved(tmp_path / "donor", 1, generative_decoder=TINY_DECODER)
    export = load_script("export")
    assert export.main(["--model", str(codec), "--denoiser-from", str(donor), "--out", str(tmp_path / "out")]) == 0
    out, was, gave = (load_model(p) for p in (tmp_path / "out", codec, donor))
    weights = {model: dict(model.named_parameters()) for model in (out, was, gave)}  # tables are rebuilt
    for name, tensor in weights[out].items():
        source = gave if name.startswith("denoiser.") else was
        assert torch.equal(tensor, weights[source][name]), name
    assert any(not torch.equal(tensor, weights[was][name]) for name, tensor in weights[out].items())


def test_a_donor_of_another_shape_or_none_is_refused(tmp_path):
    codec = _saved(tmp_path / "codec", 0, generative_decoder=TINY_DECODER)
    wider = _saved(tmp_path / "wider", 1, generative_decoder={**TINY_DECODER, "layers_per_block": 2})
    plain = _saved(tmp_path / "plain", 2, generative_decoder=None)
    export = load_script("export")
    with pytest.raises(GencodecError, match="another generative decoder"):
        export.main(["--model", str(codec), "--denoiser-from", str(wider), "--out", str(tmp_path / "a")])
    with pytest.raises(GencodecError, match="need a generative decoder"):
        export.main(["--model", str(codec), "--denoiser-from", str(plain), "--out", str(tmp_path / "b")])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
