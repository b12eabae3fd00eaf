"""The generative decoder: seeded sampling, the realism knob, steps, tiling for large images."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from gencodec import cli, codec as codec_module, diffusion
from gencodec.diffusion import block_noise
from gencodec.training.noise import TrainingNoise
from gencodec.errors import GencodecError

from .conftest import smooth_image


@pytest.fixture(scope="module")
def data(generative_codec):
    return generative_codec.compress(smooth_image(64, 96, seed=3), level=1)


def _decode(codec, data, **kw):
    return np.asarray(codec.decompress(data, **kw))


def test_same_seed_same_image_other_seed_other_image(generative_codec, data):
    a = _decode(generative_codec, data, realism=1.0, seed=5)
    b = _decode(generative_codec, data, realism=1.0, seed=5)
    c = _decode(generative_codec, data, realism=1.0, seed=6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_realism_zero_is_the_base_reconstruction_exactly(generative_codec, data):
    code, header = generative_codec.decode_code(data)
    model = generative_codec.model
    with torch.no_grad():
        y_hat = model.latent_codec.reconstruct(code, header.level)
        x_bar = model.synthesis(y_hat)[:, :, : header.height, : header.width]
    from gencodec.imageio import tensor_to_image
    assert np.array_equal(_decode(generative_codec, data, realism=0.0), tensor_to_image(x_bar))


def test_realism_trades_smoothly(generative_codec, data):
    base = _decode(generative_codec, data, realism=0.0).astype(float)
    dist = [np.abs(_decode(generative_codec, data, realism=r).astype(float) - base).mean() for r in (0.25, 0.5, 1.0)]
    assert 0 < dist[0] < dist[1] < dist[2]


@pytest.mark.parametrize("steps", [1, 2, 4])
@pytest.mark.parametrize("kind", diffusion.SCHEDULERS)
def test_step_count_is_honoured(generative_codec, data, monkeypatch, steps, kind):
    calls = []
    denoiser = generative_codec.model.denoiser
    original = type(denoiser).forward

    def counting(self, r_t, t, condition):
        calls.append(float(t[0]))
        return original(self, r_t, t, condition)

    monkeypatch.setattr(type(denoiser), "forward", counting)
    generative_codec.decompress(data, realism=1.0, steps=steps, scheduler=kind)
    assert len(calls) == steps
    assert calls == sorted(calls, reverse=True)  # from noise towards the image


def test_bad_decode_options_are_clear_errors(generative_codec, rich_codec, data):
    for kw in (dict(realism=1.5), dict(realism="x"), dict(steps=0), dict(seed=-1), dict(scheduler="pndm")):
        with pytest.raises(GencodecError):
            generative_codec.decompress(data, **kw)
    plain = rich_codec.compress(smooth_image(16, 16))  # a model without a generative decoder
    assert np.asarray(rich_codec.decompress(plain)).shape == (16, 16, 3)  # realism 0 by default
    with pytest.raises(GencodecError, match="no generative decoder"):
        rich_codec.decompress(plain, realism=1.0)


def test_tiled_decoding_matches_whole_decoding_without_seams(generative_codec, monkeypatch):
    """Small tiles force the tiled path on a small image: at realism 0 it must agree with the whole-image
    path; at realism 1 (other noise: drawn block by block) it must show no seams and keep to the seed."""
    data = generative_codec.compress(smooth_image(256, 320, seed=4), level=2)
    whole = _decode(generative_codec, data, realism=0.0).astype(float)
    monkeypatch.setattr(codec_module, "DECODE_TILE", 128)  # 8 y positions, 2x3 tiles
    monkeypatch.setattr(codec_module, "DECODE_OVERLAP", 64)
    tiled = _decode(generative_codec, data, realism=0.0).astype(float)
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).mean() < 3.0  # of 255; GroupNorm statistics differ slightly per tile
    generated = _decode(generative_codec, data, realism=1.0, seed=1).astype(float)
    assert np.array_equal(generated, _decode(generative_codec, data, realism=1.0, seed=1))
    assert not np.array_equal(generated, _decode(generative_codec, data, realism=1.0, seed=2))
    for image in (tiled, generated):
        # No seam: the mean absolute step between neighbouring columns at tile borders is like elsewhere.
        steps = np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))
        assert steps.max() < 4 * np.median(steps) + 2


def test_block_noise_agrees_wherever_tiles_overlap():
    field = block_noise(7, 3, 0, 0, 200, 150, block=64)
    assert torch.equal(block_noise(7, 3, 37, 90, 100, 60, block=64), field[..., 37:137, 90:150])
    assert not torch.equal(block_noise(8, 3, 0, 0, 200, 150, block=64), field)
    assert abs(field.mean().item()) < 0.05 and abs(field.std().item() - 1) < 0.05


def test_cli_decompress_defaults_are_the_codecs_and_its_help_says_so(generative_codec, data, tmp_path, monkeypatch,
                                                                       capsys):
    """Without --steps the CLI decodes exactly as Codec.decompress does by default, with the
    model's number of denoising steps, as `decompress --help` states."""
    assert cli.main(["decompress", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    entry = re.search(r"--steps STEPS ((?:(?! --).)*)", help_text)  # the option's help, up to the next option
    assert entry and "default: the model's" in entry.group(1), help_text
    calls = []
    denoiser = generative_codec.model.denoiser
    original = type(denoiser).forward

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(denoiser), "forward", counting)
    monkeypatch.setattr(cli.common, "load_codec", lambda args: generative_codec)
    src, out = tmp_path / "x.gcz", tmp_path / "x.png"
    src.write_bytes(data)
    assert cli.main(["decompress", str(src), "-o", str(out), "--realism", "1"]) == 0
    assert len(calls) == generative_codec.model.config.diffusion["steps"]
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(out)), _decode(generative_codec, data, realism=1.0))


def test_cli_decompress_options(generative_codec, data, tmp_path, monkeypatch):
    monkeypatch.setattr(cli.common, "load_codec", lambda args: generative_codec)
    src = tmp_path / "x.gcz"
    src.write_bytes(data)
    for seed in (3, 3, 4):
        out = tmp_path / f"seed{seed}.png"
        assert cli.main(["decompress", str(src), "-o", str(out), "--realism", "1", "--steps", "2",
                         "--seed", str(seed), "-f"]) == 0
    from PIL import Image
    a, b = (np.asarray(Image.open(tmp_path / f"seed{s}.png")) for s in (3, 4))
    assert np.array_equal(a, _decode(generative_codec, data, realism=1.0, steps=2, seed=3))
    assert not np.array_equal(a, b)


def test_training_noise_puts_the_asked_fraction_on_the_last_timestep():
    x0 = torch.randn(4000, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    settings = diffusion.diffusion_settings()
    _, t_uniform = TrainingNoise()(x0, settings, generator=gen)
    x_t, t = TrainingNoise(final_step_fraction=0.5)(x0, settings, generator=gen)
    last = settings["num_train_timesteps"] - 1
    assert (t_uniform == last).float().mean() < 0.01
    assert 0.45 < (t == last).float().mean() < 0.55
    assert t.min() < 100  # the rest stay spread over the schedule
    # Zero terminal SNR: at the last timestep the input holds nothing of the target.
    corr = torch.corrcoef(torch.stack([x_t[t == last].flatten(), x0[t == last].flatten()]))[0, 1]
    assert abs(corr) < 0.02
    with pytest.raises(ValueError, match="final_step_fraction"):
        TrainingNoise(final_step_fraction=1.5)
