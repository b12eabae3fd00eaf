"""Shared fixtures: small models and images built on the spot (no network, no ../shared)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]  # the project's root folder
SHARED = ROOT.parent / "shared"
KODAK = SHARED / "data" / "kodak"
LPIPS_WEIGHTS = SHARED / "weights" / "alexnet_features.pth"  # LPIPS' AlexNet features
LPIPS_CHECK = SHARED / "weights" / "lpips_check"  # the lpips README's example images


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photo-like test image: smooth colour fields plus a little texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    img = np.zeros((height, width, 3))
    for c in range(3):
        a, b, f = rng.uniform(-1, 1, 3)
        img[..., c] = 0.5 + 0.3 * np.sin(6 * (a * xx + b * yy) + f) + 0.05 * rng.standard_normal((height, width))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def untrained_codec():
    """The default architecture (generative decoder included) with random weights."""
    import gencodec
    return gencodec.load("untrained", device="cpu")


def make_rich_model():
    """An untrained model stretched so its code exercises the coder.

    Fresh weights put almost every z^ at 0 and every scale index in one place,
    which would make the determinism tests trivially true. Amplifying the
    hyper-analysis output and the scale network spreads z^ over several
    integers and the indexes over much of the table.
    """
    from gencodec.nn.analysis import LATENT_INIT_GAIN
    from gencodec.pretrained import untrained_model
    model = untrained_model(generative_decoder=None)
    with torch.no_grad():
        model.latent_codec.hyper_analysis.layers[-1].weight.mul_(200)
        model.latent_codec.scale_net.conv3.weight.mul_(4)
        for level in range(model.n_levels):
            model.latent_codec.log_gain[level].fill_(math.log(10 * 1.6 ** level / LATENT_INIT_GAIN))
    model.update_tables()
    return model.eval()


@pytest.fixture(scope="session")
def rich_codec():
    from gencodec.codec import Codec
    return Codec(make_rich_model(), device="cpu")


@pytest.fixture(scope="session")
def photo():
    return smooth_image(128, 192, seed=1)


# A generative decoder small enough to sample in well under a second on a CPU.
TINY_DECODER = dict(block_out_channels=(32, 32), attention_head_dim=8, norm_num_groups=8)


@pytest.fixture(scope="session")
def generative_codec():
    from gencodec.codec import Codec
    from gencodec.pretrained import untrained_model
    model = untrained_model(latent_channels=32, channels=(16, 24, 32, 48), blocks=(0, 0, 1, 1),
                            attention_heads=2, hyper_channels=32, hyper_latent_channels=16,
                            generative_decoder=TINY_DECODER)
    return Codec(model, device="cpu")


def load_script(name: str):
    """train/<name>.py as a module: the training scripts are not part of the package."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"gencodec_{name}", ROOT / "train" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_module():
    """train/train.py as a module (its main() runs a training as the command line does)."""
    return load_script("train")


# A small codec with TINY_DECODER, optionally with the denoiser's full-resolution refiner.
SMALL = dict(latent_channels=32, channels=(16, 24, 32, 48), blocks=(0, 0, 1, 1), attention_heads=2,
             hyper_channels=32, hyper_latent_channels=16)


def small_model(refine_channels: int = 0):
    from gencodec.pretrained import untrained_model
    return untrained_model(**SMALL, generative_decoder={**TINY_DECODER, "refine_channels": refine_channels})


def moving_denoiser_model():
    """A small model whose denoiser moves the picture (its last layer is zero at initialisation)."""
    model = small_model()
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


class MeanAbsDistance(torch.nn.Module):
    """Stands in for LPIPS: a per-image distance with a gradient, no weights to load."""

    def forward(self, a, b):
        return (a - b).abs().flatten(1).mean(1)


def generative_objective(model, **weights):
    """The decoder stages' objective on `model`, LPIPS stood in for, with these loss weights."""
    import dataclasses
    from gencodec.training.discriminator import ConditionalDiscriminator
    from gencodec.training.objectives import GenerativeObjective, LossWeights
    discriminator = ConditionalDiscriminator(model.config.latent_channels, channels=(8, 8, 8, 8))
    return GenerativeObjective(MeanAbsDistance(), discriminator, dataclasses.replace(LossWeights(), **weights),
                               train_codec=False, final_step_fraction=1.0)
