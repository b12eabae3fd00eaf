"""What a time-limited run on a lent machine needs: a deadline, the trained weights in a small file,
and files cut into parts of bounded size and joined back."""

from __future__ import annotations

import time

import pytest
import torch
import yaml
from PIL import Image

import gencodec
from gencodec.errors import GencodecError
from gencodec.pretrained import untrained_model
from gencodec.training.config import parse_config
from gencodec.training.file_parts import join_parts, split_file
from gencodec.training.runner import RunOptions, StageRun
from gencodec.training.stage_weights import load_stage_weights, save_stage_weights, stage_state

from .conftest import ROOT, smooth_image

TINY = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))


def test_a_file_cut_into_parts_joins_back(tmp_path):
    source = tmp_path / "weights.bin"
    source.write_bytes(bytes(range(256)) * 41)
    parts = split_file(source, tmp_path / "out", part_bytes=1000)
    assert len(parts) == 11 and all(p.stat().st_size <= 1000 for p in parts)
    joined = join_parts(tmp_path / "out", "weights.bin", tmp_path / "back" / "weights.bin")
    assert joined.read_bytes() == source.read_bytes()
    parts[3].write_bytes(parts[3].read_bytes()[:-1] + b"x")
    with pytest.raises(GencodecError, match="do not rebuild the file"):
        join_parts(tmp_path / "out", "weights.bin", tmp_path / "bad")
    parts[4].unlink()
    with pytest.raises(GencodecError, match="part weights.bin.part-04 is missing"):
        join_parts(tmp_path / "out", "weights.bin", tmp_path / "bad")


def test_stage_weights_hold_what_the_stage_trains(tmp_path):
    trained = untrained_model("pixel", **TINY["model"])
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / "codec.safetensors"
    save_stage_weights(trained, "codec", path, steps=12, stage="codec")
    fresh = untrained_model("pixel", **TINY["model"])
    assert load_stage_weights(fresh, path, "codec") == 12
    for name, value in stage_state(trained, "codec").items():
        assert torch.allclose(dict(fresh.named_parameters())[name], value, rtol=1e-3, atol=1e-6)
    assert not any(name.startswith("denoiser.") for name in stage_state(trained, "codec"))
    with pytest.raises(GencodecError, match="holds weights of stage 'codec', not of stage 'decoder'"):
        load_stage_weights(fresh, path, "decoder")
    other = untrained_model("pixel", **{**TINY["model"], "latent_channels": 24})
    with pytest.raises(GencodecError, match="does not fit the stage's model"):
        load_stage_weights(other, path, "codec")


def test_a_stage_stops_at_its_deadline_and_the_next_run_goes_on(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(64, 64, seed=i)).save(photos / f"p{i}.png")
    raw = {**TINY, "validate_every": 0, "trackers": [], "stages": [{"name": "codec", "steps": 1000}]}
    cfg = parse_config(raw)
    options = RunOptions(out=tmp_path / "run", data=str(photos), cpu=True, deadline=time.monotonic() + 3)
    stage = StageRun(cfg, cfg.resolve(0), options)
    stage.setup()
    stage.train()
    stage.finish()
    assert 2 <= stage.steps_run < 1000 and stage.images_per_second > 0
    model = gencodec.load(tmp_path / "run" / "codec" / "model", device="cpu").model
    assert model.config.trained_steps == stage.steps_run
    weights = tmp_path / "codec.safetensors"
    save_stage_weights(model, "codec", weights, steps=stage.steps_run, stage="codec")

    again = StageRun(cfg, cfg.resolve(0), RunOptions(out=tmp_path / "run2", data=str(photos), cpu=True,
                                                     stage_weights=weights, steps=1))
    assert again.start_steps == stage.steps_run
    name, value = next(iter(stage_state(model, "codec").items()))
    assert torch.allclose(dict(again.model.named_parameters())[name], value, rtol=1e-3, atol=1e-6)
