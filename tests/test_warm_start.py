"""Warm starts: a stage's model must fit its warm start, but for modules added as the identity
and networks that start afresh; train/train.py and train/export.py build each stage's own model."""

from __future__ import annotations

import pytest
import torch
import yaml
from PIL import Image

import gencodec
from gencodec.errors import GencodecError
from gencodec.pretrained import untrained_model

from .conftest import ROOT, SMALL, TINY_DECODER, load_script, smooth_image
from .conftest import small_model as _model
from .conftest import train_module as _train_module


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


def test_a_fresh_network_is_not_taken_from_the_warm_start():
    trained = _model()
    wider = untrained_model(**SMALL, generative_decoder={**TINY_DECODER, "block_out_channels": (48, 48)})
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(ValueError, match="size mismatch"):
        wider.load_warm_start(trained.state_dict())
    assert all(torch.equal(v, before[k]) for k, v in wider.state_dict().items())  # refused: nothing loaded
    assert wider.load_warm_start(trained.state_dict(), fresh=("denoiser",)) == []
    for key, value in wider.state_dict().items():
        expected = before[key] if key.startswith("denoiser.") else trained.state_dict()[key]
        assert torch.equal(value, expected), key
    with pytest.raises(ValueError, match="no network 'decoder' to start afresh"):
        wider.load_warm_start(trained.state_dict(), fresh=("decoder",))


def _run_two_stages(tmp_path, second: dict):
    """A 2-step codec stage, then `second` from its export, on the tiny config; returns what the test needs."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(96, 96, seed=i)).save(photos / f"p{i}.png")
    train = _train_module()
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg.update(trackers=[], validate_every=0)
    cfg["stages"] = [{"name": "codec", "steps": 2}, {"objective": "codec", "steps": 1, **second}]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert train.main(["--config", str(config), "--data", str(photos), "--out", str(out), "--cpu"]) == 0
    return train, cfg, config, photos, out


def test_a_stage_adds_a_refiner_to_its_warm_start_and_says_so(tmp_path, capsys):
    train, cfg, config, photos, out = _run_two_stages(
        tmp_path, {"name": "codec_refined", "model": {"generative_decoder": {"refine_channels": 8}}})
    assert "stage 'codec_refined': denoiser.refiner is new (it starts as the identity)" in capsys.readouterr().out
    assert gencodec.load(out / "codec" / "model", device="cpu").model.denoiser.refiner is None
    refined = gencodec.load(out / "model", device="cpu").model
    assert refined.denoiser.refiner is not None
    assert refined.config.generative_decoder["block_out_channels"] == [32, 32]  # the rest merged in
    # A checkpoint of that stage exports with the stage's model.
    export = load_script("export")
    checkpoint = out / "codec_refined" / "checkpoints" / "checkpoint-1"
    assert export.main(["--config", str(config), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "e")]) == 0
    assert gencodec.load(tmp_path / "e", device="cpu").model.denoiser.refiner is not None
    # The other way round a model would lose trained tensors: refused before any training.
    cfg["stages"] = [{"name": "codec", "steps": 1, "init": str(out / "model")}]
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(GencodecError, match="does not fit the config's model: .* e.g. 'denoiser.refiner"):
        train.main(["--config", str(config), "--data", str(photos), "--out", str(tmp_path / "c"), "--cpu"])


def test_a_stage_starts_a_wider_denoiser_afresh_on_a_trained_codec(tmp_path, capsys):
    train, cfg, config, photos, out = _run_two_stages(
        tmp_path, {"name": "codec_wide", "fresh": ["denoiser"],
                   "model": {"generative_decoder": {"block_out_channels": [48, 48]}}})
    assert "stage 'codec_wide': the denoiser starts afresh, not from the warm start" in capsys.readouterr().out
    wide = gencodec.load(out / "model", device="cpu").model
    assert wide.config.generative_decoder["block_out_channels"] == [48, 48]
    cfg["stages"] = [{"name": "codec", "steps": 1, "fresh": ["denoiser"]}]
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(GencodecError, match="stage 'codec' has fresh but no warm start"):
        train.main(["--config", str(config), "--data", str(photos), "--out", str(tmp_path / "b"), "--cpu"])


def test_a_stage_model_setting_is_checked_before_any_stage_starts(tmp_path):
    train = _train_module()
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    for key, bad, message in (("model", {"refine": 8}, r"stages\[0\].model.refine: unknown key \(known: latent_"),
                              ("model", 8, r"stages\[0\].model: expected a mapping, got 8"),
                              ("fresh", ["decoder"], r"stages\[0\].fresh\[0\]: expected one of analysis, "),
                              ("fresh", "denoiser", r"stages\[0\].fresh: expected a list, got 'denoiser'")):
        cfg["stages"] = [{"name": "codec", "steps": 1, key: bad}]
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(cfg))
        with pytest.raises(GencodecError, match=message):
            train.main(["--config", str(config), "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--cpu"])
        assert not (tmp_path / "run").exists()
