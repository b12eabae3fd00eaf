"""Training the generative decoder on what the downscaled rungs show it (gencodec.training.rung_inputs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import gencodec
from gencodec.codec import Codec
from gencodec.imageio import image_to_tensor, tensor_to_image
from gencodec.rungs import Rung, keep_low_frequencies as keep_low_frequencies_uint8, rungs_of
from gencodec.training import losses
from gencodec.training.objectives import THUMBNAIL
from gencodec.training.rung_inputs import (downscaled_rungs, gaussian_blur, keep_low_frequencies, random_crop,
                                           rung_inputs)

from .conftest import LPIPS_WEIGHTS, ROOT, SMALL, TINY_DECODER, generative_objective, smooth_image
from .conftest import train_module as _train_module

LADDER = [[2, 2, 3], [3, 2, 3], [3, 1, None]]


def _model(colour_offset: bool = True):
    from gencodec.pretrained import untrained_model
    model = untrained_model(**SMALL, generative_decoder=TINY_DECODER, rungs=LADDER, colour_offset=colour_offset)
    with torch.no_grad():  # a denoiser that moves the picture (its last layer starts at zero)
        for p in model.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p, generator=torch.Generator().manual_seed(0)))
    return model.eval()


@pytest.mark.parametrize("file_level", [0, 1])
def test_the_rung_input_is_the_upsampled_picture_a_decoder_makes_of_the_file(file_level):
    model = _model()
    codec = Codec(model, device="cpu")
    photo = smooth_image(128, 256, seed=3)
    decoded = np.asarray(codec.decompress(codec.compress(photo, file_level), realism=0))
    rung = rungs_of(model.config, model.n_levels)[file_level]
    inputs = rung_inputs(model, image_to_tensor(photo), [rung])
    assert np.array_equal(tensor_to_image(inputs.pictures), decoded)  # colour offset and rounding included
    assert inputs.levels.tolist() == [rung.regenerate]
    assert torch.allclose(inputs.low_pass, gaussian_blur(inputs.pictures))


def test_rung_inputs_refuse_full_size_rungs_and_crops_the_small_picture_cannot_code():
    model = _model()
    with pytest.raises(ValueError, match="downscaled rungs"):
        rung_inputs(model, torch.rand(1, 3, 128, 128), [Rung(3)])
    with pytest.raises(ValueError, match="not a multiple of 64"):
        rung_inputs(model, torch.rand(1, 3, 96, 128), [Rung(2, 2, 3)])
    assert downscaled_rungs(rungs_of(model.config, model.n_levels)) == [Rung(2, 2, 3), Rung(3, 2, 3)]


def test_keeping_the_low_frequencies_is_the_decoders_within_a_level_or_two():
    rng = np.random.default_rng(0)
    picture = smooth_image(96, 128, seed=5)
    drawn = np.clip(picture.astype(int) + rng.integers(-40, 41, picture.shape) + 25, 0, 255).astype(np.uint8)
    expected = keep_low_frequencies_uint8(drawn, picture).astype(int)
    kept = keep_low_frequencies(image_to_tensor(drawn), gaussian_blur(image_to_tensor(picture)))
    difference = np.abs(tensor_to_image(kept).astype(int) - expected)[16:-16, 16:-16]  # the edges are padded apart
    assert difference.mean() < 1.0 and difference.max() <= 4
    # The brightening (+25) is gone: the low frequencies are the picture's.
    assert abs(tensor_to_image(kept).mean() - picture.mean()) < 1.0 < abs(drawn.mean() - picture.mean())


def test_a_random_crop_cuts_every_tensor_at_the_same_place():
    a = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    b = a + 1000
    ca, cb = random_crop([a, b], 4, torch.Generator().manual_seed(1))
    assert ca.shape == (2, 3, 4, 4) and torch.equal(cb, ca + 1000)


def test_rung_samples_reach_for_the_photo_and_keep_the_pictures_low_frequencies():
    model = _model()
    photos = image_to_tensor(smooth_image(128, 128, seed=7)).repeat(2, 1, 1, 1)
    plain = torch.rand(2, 3, 128, 128)
    ladder = downscaled_rungs(rungs_of(model.config, model.n_levels))
    inputs = rung_inputs(model, photos, ladder, torch.Generator().manual_seed(0))
    objective = generative_objective(model.train())
    level, lambdas = torch.tensor([3, 3]), torch.ones(model.n_levels)
    torch.manual_seed(0)
    loss, metrics = objective.generator_loss(model, plain, level, lambdas, plain, inputs, photos)
    loss.backward()
    assert torch.isfinite(loss)
    real, drawn, _ = objective._last
    assert torch.equal(real[:2], plain) and torch.equal(real[2:], photos)  # the discriminator's real images
    assert sum(p.grad.abs().sum() for p in model.denoiser.parameters() if p.grad is not None) > 0
    # The denoiser moved the rung samples, but their thumbnails stay the upsampled pictures'.
    moved = losses.thumbnail_mse(drawn[2:], inputs.pictures, THUMBNAIL)
    assert (drawn[2:] - inputs.pictures).abs().mean() > 1e-3
    assert (moved < 2e-4).all()
    with pytest.raises(ValueError, match="need their photos"):
        objective.generator_loss(model, plain, level, lambdas, plain, inputs)


@pytest.mark.skipif(not LPIPS_WEIGHTS.exists(), reason="LPIPS weights (../shared/weights) not present")
def test_a_decoder_stage_trains_on_rung_samples_and_leaves_the_code_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("GENCODEC_LPIPS_WEIGHTS", str(LPIPS_WEIGHTS))
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(160, 160, seed=i)).save(photos / f"p{i}.png")
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg["model"]["rungs"] = [[1, 2, 3], [2, 2, 3], [3, 1, None]]
    cfg["stages"] = [cfg["stages"][0], {"name": "decoder", "steps": 2, "final_step_fraction": 1.0,
                                        "rung_fraction": 0.5, "denoise_crop": 64, "data": {"crop_size": 128}}]
    cfg.update(validate_every=0, val_levels=[0, 2])  # file levels: three rungs
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert _train_module().main(["--config", str(config), "--data", str(photos), "--out", str(out), "--cpu",
                                 "--steps", "2"]) == 0
    before = gencodec.load(out / "codec" / "model", device="cpu")
    after = gencodec.load(out / "decoder" / "model", device="cpu")
    old, new = before.model.state_dict(), after.model.state_dict()
    assert {name.split(".")[0] for name in old if not torch.equal(old[name], new[name])} == {"denoiser"}
    assert rungs_of(after.model.config, after.model.n_levels) == rungs_of(cfg["model"], 4)


@pytest.mark.parametrize("stage, message", [
    ({"name": "codec_b", "objective": "codec", "steps": 1, "rung_fraction": 0.5},
     "stage 'codec_b' trains the codec only: 'rung_fraction' has no effect there"),
    ({"name": "joint", "steps": 1, "model": {"rungs": LADDER}, "rung_fraction": 0.5},
     "stage 'joint': rung_fraction and denoise_crop apply to the pixel family's decoder stages, not a pixel joint"),
    ({"name": "decoder", "steps": 1, "rung_fraction": 0.5},
     "stage 'decoder': rung_fraction needs a model with downscaled rungs (model.rungs)"),
    ({"name": "decoder", "steps": 1, "model": {"rungs": LADDER}, "rung_fraction": 1.5},
     "stage 'decoder': rung_fraction must be above 0 and at most 1, got 1.5"),
    ({"name": "decoder", "steps": 1, "denoise_crop": 48},
     "stage 'decoder': denoise_crop must be a multiple of 64 up to data.crop_size (64), got 48"),
    ({"name": "decoder", "steps": 1, "denoise_crop": 128},
     "stage 'decoder': denoise_crop must be a multiple of 64 up to data.crop_size (64), got 128"),
])
def test_rung_settings_a_stage_cannot_use_are_one_line(stage, message):
    from gencodec.errors import GencodecError
    from gencodec.training.config import parse_config
    raw = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    raw["stages"] = [{"name": "first", "objective": "codec", "steps": 1}, stage]
    raw["val_levels"] = [0, 2]  # file levels: LADDER has three
    with pytest.raises(GencodecError) as info:
        parse_config(raw, "configs/x.yaml")
    assert str(info.value).removeprefix("configs/x.yaml: ").startswith(message)


def test_validation_levels_beyond_a_stages_rungs_are_refused_before_training():
    from gencodec.errors import GencodecError
    from gencodec.training.config import parse_config
    raw = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    raw["stages"] = [{"name": "first", "objective": "codec", "steps": 1},
                     {"name": "decoder", "steps": 1, "model": {"rungs": LADDER}}]
    raw["val_levels"] = [0, 3]  # four coding levels, but three file levels in the second stage
    with pytest.raises(GencodecError, match=r"val_levels: stage 'decoder' has file levels 0\.\.2 \(its model's rungs\), "
                                            "not 3"):
        parse_config(raw, "configs/x.yaml")
    raw["val_levels"] = [0, 2]
    parse_config(raw, "configs/x.yaml")
