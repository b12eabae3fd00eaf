"""The denoiser's full-resolution refiner, and warm starts that add one to a trained model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import gencodec
from gencodec.bitstream import unpack_file
from gencodec.codec import Codec
from gencodec.pretrained import untrained_model

from .conftest import TINY_DECODER, smooth_image
from .test_train import _train_module

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(latent_channels=32, channels=(16, 24, 32, 48), blocks=(0, 0, 1, 1), attention_heads=2,
             hyper_channels=32, hyper_latent_channels=16)


def _model(refine_channels: int = 0):
    return untrained_model(**SMALL, generative_decoder={**TINY_DECODER, "refine_channels": refine_channels})


def _denoiser_inputs(model, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x_bar = torch.rand(2, 3, 64, 96, generator=g)
    features = torch.randn(2, model.synthesis.feature_channels, 16, 24, generator=g)
    den = model.denoiser
    r_t = torch.randn(2, den.residual_channels, 16, 24, generator=g)
    return x_bar, den.condition(x_bar, features), r_t, torch.tensor([999, 500])


def test_a_refiner_added_to_a_trained_model_changes_nothing_until_trained():
    plain, refined = _model(), _model(refine_channels=8)
    assert refined.load_warm_start(plain.state_dict()) == ["denoiser.refiner"]
    refined.update_tables()
    _, condition, r_t, t = _denoiser_inputs(plain)
    with torch.no_grad():
        assert torch.equal(plain.denoiser(r_t, t, condition), refined.denoiser(r_t, t, condition))
    image = smooth_image(64, 96, seed=2)
    a, b = Codec(plain, device="cpu"), Codec(refined, device="cpu")
    data_a, data_b = a.compress(image, level=1), b.compress(image, level=1)
    assert unpack_file(data_a)[1] == unpack_file(data_b)[1]  # the same payload; the fingerprints differ
    decoded_a = np.asarray(a.decompress(data_a, realism=1.0, seed=3))
    decoded_b = np.asarray(b.decompress(data_b, realism=1.0, seed=3))
    assert np.array_equal(decoded_a, decoded_b)


def test_the_refiner_corrects_the_prediction_at_full_resolution():
    model = _model(refine_channels=8)
    refiner = model.denoiser.refiner
    with torch.no_grad():
        refiner.out.weight.normal_(0, 0.1)
    den = model.denoiser
    x_bar, condition, r_t, t = _denoiser_inputs(model)
    with torch.no_grad():
        total = den(r_t, t, condition)
        unet = den.unet(torch.cat([r_t, condition], 1), t).sample
        # The refiner sees x_bar itself (as the condition holds it, in [-1, 1]) and the unfolded tensors.
        correction = refiner(den.unfold_image(unet), den.unfold_image(r_t), x_bar * 2 - 1)
    assert correction.shape == x_bar.shape
    assert torch.allclose(den.unfold_image(total - unet), correction, atol=1e-6)
    assert correction.abs().mean() > 1e-3


def test_the_refiner_learns():
    model = _model(refine_channels=8)
    _, condition, r_t, t = _denoiser_inputs(model)
    model.denoiser(r_t, t, condition).square().mean().backward()
    grads = [p.grad for p in model.denoiser.refiner.parameters()]
    assert model.denoiser.refiner.out.weight.grad.abs().sum() > 0
    assert all(g is not None for g in grads)


def test_a_warm_start_that_does_not_fit_is_refused_in_one_line():
    refined = _model(refine_channels=8)
    with pytest.raises(ValueError, match="do not match the model, e.g. 'denoiser.refiner.hidden.0.weight'"):
        _model().load_warm_start(refined.state_dict())  # tensors the model has no place for
    wider = untrained_model(**{**SMALL, "latent_channels": 40}, generative_decoder=TINY_DECODER)
    with pytest.raises(ValueError) as info:
        _model().load_warm_start(wider.state_dict())
    assert "\n" not in str(info.value) and "size mismatch" in str(info.value)
    missing_codec = {k: v for k, v in _model().state_dict().items() if not k.startswith("synthesis.")}
    with pytest.raises(ValueError, match="e.g. 'synthesis."):
        _model().load_warm_start(missing_codec)  # only the addable modules may be missing


def _export_module():
    spec = importlib.util.spec_from_file_location("gencodec_export", ROOT / "train" / "export.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "train"))  # as when run as a script: train.py sits beside it
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "train"))
    return module


def test_a_stage_adds_a_refiner_to_its_warm_start_and_says_so(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(96, 96, seed=i)).save(photos / f"p{i}.png")
    train = _train_module()
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg.update(trackers=[], validate_every=0)
    cfg["stages"] = [{"name": "codec", "steps": 2},
                     {"name": "codec_refined", "objective": "codec", "steps": 1,
                      "model": {"generative_decoder": {"refine_channels": 8}}}]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert train.main(["--config", str(config), "--data", str(photos), "--out", str(out), "--cpu"]) == 0
    assert "stage 'codec_refined': denoiser.refiner is new (it starts as the identity)" in capsys.readouterr().out
    assert gencodec.load(out / "codec" / "model", device="cpu").model.denoiser.refiner is None
    refined = gencodec.load(out / "model", device="cpu").model
    assert refined.denoiser.refiner is not None
    assert refined.config.generative_decoder["block_out_channels"] == [32, 32]  # the rest merged in
    # A checkpoint of that stage exports with the stage's model.
    export = _export_module()
    checkpoint = out / "codec_refined" / "checkpoints" / "checkpoint-1"
    assert export.main(["--config", str(config), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "e")]) == 0
    assert gencodec.load(tmp_path / "e", device="cpu").model.denoiser.refiner is not None
    # The other way round a model would lose trained tensors: refused before any training.
    cfg["stages"] = [{"name": "codec", "steps": 1, "init": str(out / "model")}]
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(train.GencodecError, match="does not fit the config's model: .* e.g. 'denoiser.refiner"):
        train.main(["--config", str(config), "--data", str(photos), "--out", str(tmp_path / "c"), "--cpu"])


def test_a_stage_model_setting_is_checked_before_any_stage_starts(tmp_path):
    train = _train_module()
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    for bad, message in (({"refine": 8}, "stage 'codec': unknown model setting 'refine'"),
                         (8, "stage 'codec': model must be a mapping")):
        cfg["stages"] = [{"name": "codec", "steps": 1, "model": bad}]
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(cfg))
        with pytest.raises(train.GencodecError, match=message):
            train.main(["--config", str(config), "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--cpu"])
