"""The diffusion schedule and sampler defaults live in the model's config and its fingerprint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gencodec import diffusion
from gencodec.pretrained import untrained_model
from gencodec.training.export import export_model

from .conftest import TINY_DECODER

SMALL = dict(latent_channels=32, channels=(16, 24, 32, 48), blocks=(0, 0, 1, 1), attention_heads=2,
             hyper_channels=32, hyper_latent_channels=16, generative_decoder=TINY_DECODER)


def test_settings_are_stored_in_full_and_partial_settings_take_the_defaults():
    model = untrained_model(**SMALL, diffusion={"steps": 2, "sampler_options": {"euler": {"timestep_spacing": 1}}})
    settings = model.config.diffusion
    assert settings["steps"] == 2 and settings["sampler"] == "ddim"
    assert settings["num_train_timesteps"] == diffusion.DEFAULT_DIFFUSION["num_train_timesteps"]
    assert settings["sampler_options"]["euler"] == {"final_sigmas_type": "zero", "timestep_spacing": 1}
    assert set(settings) == set(diffusion.DEFAULT_DIFFUSION)


@pytest.mark.parametrize("bad, message", [({"stepz": 2}, "unknown diffusion setting 'stepz'"),
                                          ({"sampler": "pndm"}, "unknown sampler 'pndm'"),
                                          ({"steps": 0}, "at least 1"),
                                          ({"sampler_options": {"pndm": {}}}, "unknown sampler 'pndm'")])
def test_bad_settings_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        diffusion.diffusion_settings(bad)


def test_the_schedule_is_covered_by_the_fingerprint():
    a = untrained_model(**SMALL)
    b = untrained_model(**SMALL, diffusion={"beta_end": 0.012})
    assert a.state_dict().keys() == b.state_dict().keys()
    assert a.fingerprint() != b.fingerprint()


def test_a_saved_model_keeps_its_schedule_when_the_defaults_change(tmp_path, monkeypatch):
    from gencodec.pretrained import load_model
    export_model(untrained_model(**SMALL, diffusion={"steps": 3}), tmp_path / "m", trained_steps=0)
    changed = dict(diffusion.DEFAULT_DIFFUSION, steps=1, beta_end=0.5)
    monkeypatch.setattr(diffusion, "DEFAULT_DIFFUSION", changed)
    loaded = load_model(tmp_path / "m")
    assert loaded.config.diffusion["steps"] == 3 and loaded.config.diffusion["beta_end"] == 0.02


def test_decoding_uses_the_models_sampler_and_steps(generative_codec, monkeypatch):
    made = []
    original = diffusion.make_scheduler

    def spy(settings, kind=None):
        scheduler = original(settings, kind)
        made.append(type(scheduler).__name__)
        return scheduler

    monkeypatch.setattr(diffusion, "make_scheduler", spy)
    data = generative_codec.compress(np.zeros((32, 32, 3), np.uint8))
    generative_codec.decompress(data, realism=1.0)
    generative_codec.decompress(data, realism=1.0, scheduler="euler")
    assert made == ["DDIMScheduler", "EulerDiscreteScheduler"]


def test_only_the_scheduler_in_use_is_imported():
    code = ("import sys, numpy as np, gencodec\n"
            "from tests.conftest import TINY_DECODER\n"
            "from gencodec.codec import Codec\n"
            "from gencodec.pretrained import untrained_model\n"
            "c = Codec(untrained_model(latent_channels=32, channels=(16, 24, 32, 48), blocks=(0, 0, 1, 1),\n"
            "          attention_heads=2, hyper_channels=32, hyper_latent_channels=16,\n"
            "          generative_decoder=TINY_DECODER), device='cpu')\n"
            "c.decompress(c.compress(np.zeros((32, 32, 3), 'uint8')), realism=1.0)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('diffusers.schedulers.scheduling_', 'scipy'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=Path(__file__).resolve().parents[1])
    loaded = out.stdout.strip()
    assert "scheduling_ddim" in loaded
    assert "dpmsolver" not in loaded and "euler" not in loaded and "scipy" not in loaded
