"""The latent family (gencodec.latent_model): coding and generating in the TAEF2 latent space.

Everything here runs on freshly initialised TAEF2 weights (no ../shared): the
pipeline, the blend in latent space, the fingerprint, the frozen autoencoder,
training from a latent cache with resume, EMA and export, and the config's
checks. tests/test_taef2.py checks the real weights against their check values.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file

import gencodec
from gencodec.codec import Codec
from gencodec.errors import GencodecError, ModelMismatchError
from gencodec.latent_model import LICENSE_NAME, LatentCodecModel
from gencodec.nn.taef2 import DECODER_FILE, ENCODER_FILE, TAEF2Decoder, TAEF2Encoder
from gencodec.pretrained import WEIGHTS_NAME, untrained_model
from gencodec.training.checkpoints import latest_checkpoint
from gencodec.training.config import load_config, parse_config
from gencodec.training.latents import cache_latents
from gencodec.training.objectives import Space
from gencodec.training.parameters import trainable_parameters

from .conftest import ROOT, smooth_image
from .conftest import train_module as _train_module

# A latent model small enough to decode a 128x192 image in well under a second.
TINY = yaml.safe_load(open(ROOT / "configs" / "tiny_latent.yaml"))["model"]


@pytest.fixture(scope="module")
def taef2_dir(tmp_path_factory):
    """Freshly initialised TAEF2 weights (float16, as the real files) and a licence beside them."""
    folder = tmp_path_factory.mktemp("taef2")
    torch.manual_seed(0)
    for module, name in ((TAEF2Encoder(), ENCODER_FILE), (TAEF2Decoder(), DECODER_FILE)):
        save_file({k: v.half() for k, v in module.state_dict().items()}, str(folder / name))
    (folder / "LICENSE").write_text("MIT License (test copy)\n")
    return folder


@pytest.fixture(scope="module")
def model(taef2_dir):
    model = untrained_model("latent", **TINY)
    model.load_autoencoder(taef2_dir)
    model.update_tables()
    return model.eval()


@pytest.fixture(scope="module")
def codec(model):
    return Codec(model, device="cpu")


@pytest.fixture(scope="module")
def cache(taef2_dir, tmp_path_factory):
    photos = tmp_path_factory.mktemp("photos")
    for i in range(6):
        Image.fromarray(smooth_image(128, 128, seed=i)).save(photos / f"p{i}.png")
    out = tmp_path_factory.mktemp("cache")
    cache_latents(photos, out, taef2_dir)
    return out


def test_every_level_and_realism_decodes_at_the_image_size(codec):
    image = smooth_image(100, 150, seed=3)
    sizes = []
    for level in range(codec.n_levels):
        data = codec.compress(image, level=level)
        sizes.append(len(data))
        assert codec.info(data).level == level
    for realism in (0.0, 0.5, 1.0):
        assert np.asarray(codec.decompress(data, realism=realism)).shape == (100, 150, 3)
    assert codec.is_generative and codec.model.downsampling == 16 and codec.model.padding_multiple == 64


def test_realism_blends_in_latent_space(codec, monkeypatch):
    """Realism r renders L_bar + r * (L_1 - L_bar): the blend is of latents, not of pixels."""
    data = codec.compress(smooth_image(64, 128, seed=4), level=2)
    rendered = []
    real_render = codec.model.render
    monkeypatch.setattr(codec.model, "render", lambda s: rendered.append(s.clone()) or real_render(s))
    for realism in (0.0, 1.0, 0.25):
        codec.decompress(data, realism=realism, seed=7)
    base, full, quarter = rendered
    assert not torch.allclose(base, full)
    torch.testing.assert_close(quarter, base + 0.25 * (full - base), atol=1e-5, rtol=1e-5)


def test_the_same_file_and_seed_give_the_same_image(codec):
    data = codec.compress(smooth_image(64, 64, seed=5), level=1)
    a, b = (np.asarray(codec.decompress(data, seed=3)) for _ in range(2))
    assert np.array_equal(a, b)


def test_the_fingerprint_covers_the_autoencoder(model, codec):
    """A changed TAEF2 decoder weight is another model: its files are refused, not decoded differently."""
    data = codec.compress(smooth_image(64, 64, seed=6), level=1)
    other = untrained_model("latent", **TINY)
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.image_decoder[-1].bias.add_(0.01)
    other.update_tables()
    assert other.fingerprint() != model.fingerprint()
    with pytest.raises(ModelMismatchError):
        Codec(other, device="cpu").decompress(data)


@pytest.mark.parametrize("kind", ["codec", "decoder", "joint"])
def test_no_stage_trains_the_autoencoder(kind):
    model = LatentCodecModel(**TINY)
    trained = {id(p) for p in trainable_parameters(model, kind)}
    frozen = list(model.image_encoder.parameters()) + list(model.image_decoder.parameters())
    assert trained and not any(id(p) in trained for p in frozen)
    assert not any(p.requires_grad for p in frozen)
    model.train()
    assert not model.image_decoder.training and not model.image_encoder.training and model.analysis.training


def test_space_renders_an_aligned_crop():
    """Space.to_image crops the latent and the image at the same place (8 px per latent cell)."""
    def render(s):  # a stand-in decoder: each cell's first three channels, blown up to 8x8 pixels
        return torch.nn.functional.interpolate(s[:, :3], scale_factor=8, mode="nearest")

    latent = torch.rand(2, 32, 6, 5)
    image = render(latent)
    space = Space(scale=8, distortion_scale=1.0, render=render, render_crop=24)
    for seed in range(5):
        rendered, target = space.to_image(latent, image, torch.Generator().manual_seed(seed))
        assert rendered.shape == target.shape == (2, 3, 24, 24)
        assert torch.equal(rendered, target)
    assert Space.of(LatentCodecModel(**TINY)).pixels(latent) == 6 * 5 * 64


def test_pixel_distortion_adds_the_rendered_crops_pixel_mse(model):
    """codec_objective's pixel term: weight x the MSE of x_bar's rendered crop against the image's same crop."""
    from gencodec.training.losses import mse
    from gencodec.training.objectives import codec_objective

    torch.manual_seed(0)
    image = torch.rand(2, 3, 64, 64)
    latent = model.to_space(image)
    level, lambdas = torch.tensor([0, 3]), torch.tensor([0.5, 1.0, 2.0, 4.0])
    space = Space.of(model, render_crop=32)
    with torch.no_grad():
        torch.manual_seed(1)
        plain, metrics = codec_objective(model, latent, level, lambdas, space)
        torch.manual_seed(1)
        weighted, pixel_metrics = codec_objective(model, latent, level, lambdas, space, image, pixel_distortion=3.0)
        torch.manual_seed(1)
        x_bar = model(latent, level)["x_bar"]
        rendered, target = space.to_image(x_bar, image)
    assert rendered.shape == (2, 3, 32, 32)
    expected = plain + (lambdas[level] * 3.0 * mse(rendered, target)).mean()
    assert torch.allclose(weighted, expected, rtol=1e-5)
    assert "psnr" in pixel_metrics and "psnr" not in metrics
    with pytest.raises(ValueError, match="needs a rendering working space and the batch's images"):
        codec_objective(model, latent, level, lambdas, space, None, pixel_distortion=3.0)


def _config(tmp_path, taef2_dir, **changes) -> str:
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny_latent.yaml"))
    cfg["autoencoder"] = str(taef2_dir)
    cfg.update(changes)
    path = tmp_path / "latent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.skipif(not (ROOT.parent / "shared" / "weights" / "alexnet_features.pth").exists(),
                    reason="LPIPS weights (../shared/weights/alexnet_features.pth) not present")
def test_both_stages_train_from_the_cache_resume_and_export(cache, taef2_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GENCODEC_LPIPS_WEIGHTS", str(ROOT.parent / "shared" / "weights" / "alexnet_features.pth"))
    train = _train_module()
    out = tmp_path / "run"
    args = ["--config", _config(tmp_path, taef2_dir), "--data", str(cache), "--out", str(out), "--cpu"]
    assert train.main(args + ["--steps", "5"]) == 0
    assert latest_checkpoint(out / "decoder" / "checkpoints").name == "checkpoint-5"
    assert train.main(args + ["--steps", "7", "--resume", "latest"]) == 0
    rows = list(csv.DictReader(open(out / "decoder" / "metrics.csv")))
    assert int(rows[-1]["step"]) == 7 and {"lpips", "diffusion", "g_adv", "d_loss"} <= set(rows[-1])
    assert all(np.isfinite(float(v)) for k, v in rows[-1].items() if k != "step")

    exported = out / "model"
    assert (exported / LICENSE_NAME).read_text() == "MIT License (test copy)\n"
    state = load_file(str(exported / WEIGHTS_NAME))
    # The export holds the EMA of the denoiser (checkpointed beside the raw weights), not the raw weights.
    checkpoint = latest_checkpoint(out / "decoder" / "checkpoints")
    assert list(checkpoint.glob("custom_checkpoint_*")), "the EMA is not in the checkpoint"
    raw = load_file(str(checkpoint / "model.safetensors"))
    denoiser = [k for k in state if k.startswith("denoiser.") and state[k].is_floating_point()]
    assert denoiser and any(not torch.equal(state[k], raw[k]) for k in denoiser)
    assert all(torch.equal(state[k], raw[k]) for k in state if k.startswith("analysis."))
    encoder = load_file(str(taef2_dir / ENCODER_FILE))
    assert all(torch.equal(state[f"image_encoder.{k}"].half(), v) for k, v in encoder.items()), \
        "training changed the frozen autoencoder"

    codec = gencodec.load(exported, device="cpu")
    assert isinstance(codec.model, LatentCodecModel) and codec.model.config.trained_steps == 14
    image = smooth_image(96, 128, seed=8)
    data = codec.compress_to_target(image, max_bytes=10_000)
    assert len(data) <= 10_000
    assert np.asarray(codec.decompress(data)).shape == (96, 128, 3)


def test_a_latent_run_on_an_image_folder_is_a_clear_error(taef2_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(smooth_image(64, 64)).save(photos / "a.png")
    train = _train_module()
    with pytest.raises(GencodecError, match="is not a complete latent cache"):
        train.main(["--config", _config(tmp_path, taef2_dir), "--data", str(photos), "--out",
                    str(tmp_path / "run"), "--cpu", "--steps", "1"])


def test_configs_latent_yaml_is_valid():
    cfg = load_config(ROOT / "configs" / "latent.yaml")
    assert cfg.family == "latent"
    assert cfg.names == ["codec", "codec_low", "decoder", "decoder_sharp", "distill", "distill_more"]
    assert cfg.resolve(2).model_setting("latent_channels") == 64
    assert cfg.resolve(5).model_setting("autoencoder") == "taef2-fast"


@pytest.mark.parametrize("change, message", [
    (lambda c: c["model"].update(attention_stages=[1]), "model.attention_stages: unknown key (known: autoencoder, "),
    (lambda c: c["stages"][1].update(model={"fold": 2}), "stages[1].model.fold: unknown key"),
    (lambda c: c["data"].update(crop_size=96), "data.crop_size: the latent family needs a multiple of 64, got 96"),
    (lambda c: c.update(autoencoder=None), "autoencoder: the latent family needs the folder"),
    (lambda c: c.update(family="pixels"), "family: expected "),
    (lambda c: c["stages"][1].update(pixel_distortion=1.0),
     "stage 'decoder': pixel_distortion is a non-negative weight for the latent family's codec stages"),
    (lambda c: c["stages"][0].update(pixel_distortion=-1.0), "stage 'codec': pixel_distortion is a non-negative"),
    (lambda c: c["stages"][0].update(thumb_distortion=1.0),
     "stage 'codec': thumb_distortion is a non-negative weight for the pixel family's codec stages"),
])
def test_latent_config_errors_are_one_line(change, message):
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny_latent.yaml"))
    change(cfg)
    with pytest.raises(GencodecError) as info:
        parse_config(cfg, "x.yaml")
    text = str(info.value)
    assert text.startswith(f"x.yaml: {message}") and "\n" not in text, text


def test_pixel_settings_refuse_latent_only_keys():
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg["autoencoder"] = "somewhere"
    with pytest.raises(GencodecError, match="apply to the latent family only"):
        parse_config(cfg, "x.yaml")


def test_untrained_latent_models_load_by_class_name(model, tmp_path):
    """A latent model folder loads as a LatentCodecModel through the same load_model as the pixel family."""
    from gencodec.training.export import export_model
    export_model(model, tmp_path / "m", trained_steps=0, files={LICENSE_NAME: ROOT / "LICENSE"}
                 if (ROOT / "LICENSE").exists() else None)
    loaded = gencodec.load_model(tmp_path / "m")
    assert isinstance(loaded, LatentCodecModel)
    assert loaded.fingerprint() == model.fingerprint()
    assert os.path.getsize(tmp_path / "m" / WEIGHTS_NAME) > 0

