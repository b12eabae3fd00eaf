"""The latent family's fast autoencoder ("taef2-fast") and the distill stage that trains it.

Runs on freshly initialised TAEF2 weights (no ../shared needed but for the
LPIPS weights of the training test): shapes, the layers it shares with TAEF2,
a warm start from a model with TAEF2 itself, the stage's config checks, and a
short codec -> distill run that trains the autoencoder and nothing else.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import gencodec
from gencodec.errors import GencodecError
from gencodec.latent_model import LatentCodecModel
from gencodec.nn.taef2 import (FastTAEF2Decoder, FastTAEF2Encoder, TAEF2Decoder, TAEF2Encoder,
                               load_shared_layers)
from gencodec.pretrained import WEIGHTS_NAME
from gencodec.training.config import parse_config
from gencodec.training.export import export_model
from gencodec.training.parameters import trainable_parameters
from gencodec.training.warm_start import build_stage_model

from .conftest import ROOT, smooth_image
from .conftest import train_module as _train_module
from .test_latent_family import TINY, _config, cache, taef2_dir  # noqa: F401  (fixtures)

LPIPS_WEIGHTS = ROOT.parent / "shared" / "weights" / "alexnet_features.pth"


def test_fast_networks_keep_the_shapes_and_share_the_teachers_layers():
    torch.manual_seed(0)
    teacher_encoder, teacher_decoder = TAEF2Encoder(), TAEF2Decoder()
    encoder, decoder = FastTAEF2Encoder(), FastTAEF2Decoder()
    load_shared_layers(encoder, teacher_encoder.state_dict())
    load_shared_layers(decoder, teacher_decoder.state_dict())
    image, latent = torch.rand(1, 3, 64, 96), torch.randn(1, 32, 8, 12)
    assert encoder(image).shape == teacher_encoder(image).shape == (1, 32, 8, 12)
    rendered = decoder(latent)
    assert rendered.shape == (1, 3, 64, 96) and 0 <= rendered.min() and rendered.max() <= 1
    for student, teacher in ((encoder, teacher_encoder), (decoder, teacher_decoder)):
        shared = {k: v for k, v in student.state_dict().items() if not k.startswith(student.NEW)}
        assert shared and all(torch.equal(v, teacher.state_dict()[k]) for k, v in shared.items())
    # Its own layers work at half resolution: far fewer multiply-adds per pixel than the teacher's.
    assert sum(p.numel() for p in decoder[16].parameters()) < sum(p.numel() for p in teacher_decoder[18].parameters())


def test_shared_layers_refuse_a_teacher_that_does_not_fit():
    state = TAEF2Decoder().state_dict()
    del state["3.conv.0.weight"]
    with pytest.raises(ValueError, match="do not fit FastTAEF2Decoder"):
        load_shared_layers(FastTAEF2Decoder(), state)


def test_a_fast_model_starts_from_a_taef2_model_with_its_own_layers_untrained():
    torch.manual_seed(0)
    plain = LatentCodecModel(**TINY)
    fast = LatentCodecModel(**{**TINY, "autoencoder": "taef2-fast"})
    own = {k: v.clone() for k, v in fast.state_dict().items() if k.startswith("image_decoder.16.")}
    added = fast.load_warm_start(plain.state_dict())
    assert added == ["image_encoder.0", "image_decoder.16"]
    assert fast.how_new_modules_start(added[0]) == "untrained: a distill stage trains it"
    state = fast.state_dict()
    assert all(torch.equal(state[k], v) for k, v in own.items())
    assert torch.equal(state["analysis.layers.0.weight"], plain.state_dict()["analysis.layers.0.weight"])
    assert torch.equal(state["image_decoder.3.conv.0.weight"], plain.state_dict()["image_decoder.3.conv.0.weight"])


def test_distill_trains_the_autoencoder_only():
    model = LatentCodecModel(**{**TINY, "autoencoder": "taef2-fast"})
    trained = {id(p) for p in trainable_parameters(model, "distill")}
    autoencoder = list(model.image_encoder.parameters()) + list(model.image_decoder.parameters())
    assert trained == {id(p) for p in autoencoder}


def _tiny(**stage):
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny_latent.yaml"))
    cfg["stages"].append({"name": "distill", "steps": 5, "model": {"autoencoder": "taef2-fast"}, **stage})
    return cfg


@pytest.mark.parametrize("stage, message", [
    ({"model": {}}, "a distill stage trains the fast autoencoder of the latent family"),
    ({"final_step_fraction": 1.0}, "final_step_fraction has no effect in a distill stage"),
    ({"loss_weights": {"adversarial": 0.1}}, "loss weight 'adversarial' has no effect there"),
    ({"data": {"render_crop": 36}}, "a distill stage needs data.render_crop, the side of its crops in pixels, "
                                    "a multiple of 8"),
])
def test_distill_config_errors_are_one_line(stage, message):
    with pytest.raises(GencodecError) as info:
        parse_config(_tiny(**stage), "x.yaml")
    text = str(info.value)
    assert message in text and "\n" not in text, text


@pytest.mark.skipif(not LPIPS_WEIGHTS.exists(), reason="LPIPS weights (../shared/weights/alexnet_features.pth) "
                                                      "not present")
def test_a_distill_stage_trains_the_fast_autoencoder_after_the_codec(cache, taef2_dir, tmp_path,  # noqa: F811
                                                                      monkeypatch):
    monkeypatch.setenv("GENCODEC_LPIPS_WEIGHTS", str(LPIPS_WEIGHTS))
    cfg = _tiny()
    cfg["autoencoder"] = str(taef2_dir)
    config = tmp_path / "fast.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert _train_module().main(["--config", str(config), "--data", str(cache), "--out", str(out), "--cpu",
                                 "--steps", "3"]) == 0
    before = load_file(str(out / "decoder" / "model" / WEIGHTS_NAME))
    after = load_file(str(out / "model" / WEIGHTS_NAME))
    changed = {k for k in after if k in before and not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith(("image_encoder.", "image_decoder.")) for k in changed)
    assert any(k.startswith("image_decoder.16.") for k in after) and "image_decoder.19.weight" not in after

    codec = gencodec.load(out / "model", device="cpu")
    assert isinstance(codec.model.image_decoder, FastTAEF2Decoder)
    image = smooth_image(96, 128, seed=3)
    assert np.asarray(codec.decompress(codec.compress(image, level=1))).shape == (96, 128, 3)


def test_a_stage_takes_a_distilled_autoencoder_under_a_trained_codec(tmp_path):
    """autoencoder_from: the codec from the warm start, the autoencoder from another model of its kind."""
    torch.manual_seed(0)
    codec_model = LatentCodecModel(**TINY)
    export_model(codec_model, tmp_path / "codec", trained_steps=7)
    distilled = LatentCodecModel(**{**TINY, "autoencoder": "taef2-fast"})
    export_model(distilled, tmp_path / "distilled", trained_steps=3)
    cfg = _tiny()
    cfg["stages"] = [{"name": "distill", "steps": 5, "model": {"autoencoder": "taef2-fast"},
                      "init": str(tmp_path / "codec"), "autoencoder_from": str(tmp_path / "distilled")}]
    cfg["autoencoder"] = str(tmp_path / "unused")
    stage = parse_config(cfg, "x.yaml").resolve(0)
    said = []
    model, steps = build_stage_model(stage, tmp_path / "run", say=said.append)
    state, want_codec, want_autoencoder = model.state_dict(), codec_model.state_dict(), distilled.state_dict()
    assert steps == 7 and any("the autoencoder (taef2-fast) from" in line for line in said)
    assert not any("untrained" in line for line in said), said
    assert all(torch.equal(state[k], v) for k, v in want_autoencoder.items() if k.startswith("image_"))
    assert all(torch.equal(state[k], v) for k, v in want_codec.items() if k.startswith(("analysis.", "denoiser.")))

    cfg["stages"][0]["autoencoder_from"] = str(tmp_path / "codec")  # TAEF2 itself: not the stage's kind
    with pytest.raises(GencodecError, match="has autoencoder 'taef2', the stage's model 'taef2-fast'"):
        build_stage_model(parse_config(cfg, "x.yaml").resolve(0), tmp_path / "run", say=said.append)
    cfg["stages"][0]["autoencoder_from"] = str(tmp_path / "nothing")
    with pytest.raises(GencodecError, match="holds no exported model"):
        build_stage_model(parse_config(cfg, "x.yaml").resolve(0), tmp_path / "run", say=said.append)
