"""Fit a trained model's z context (gencodec.entropy.z_context) on photos, and add it to a model folder.

The context is fitted after training, to the codec as it is stored: its z^ are what the encoder makes
of the photos at every level. Per (level, channel), the prediction weights are a least-squares fit of
z^ on its four causal neighbours (and a bias), rounded to FRAC_BITS fixed point; the tables are the
counts of the integer residuals of each activity class, with half a count added to every entry.
Nothing in the networks changes, so every decoded picture stays as it was; only the files shrink.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..entropy.tables import quantize_pmf
from ..entropy.z_context import FRAC_BITS, N_CLASSES, N_TAPS, ZContextPrior, neighbour_taps, predict
from ..fileio import atomic_output
from ..pretrained import WEIGHTS_NAME

#: A residual never seen in fitting must still cost a finite number of bits, but at extreme rates most
#: channels are nearly always 0 (a few hundredths of a bit per value), so a flat pseudo-count over the
#: 4k + 1 entries would cost more than it saves. One pseudo-count in all is spread over the table,
#: halving with every step from 0 (quantize_pmf then gives each entry at least its one count).
SMOOTHING = 1.0
#: Keeps the least-squares fit of a channel that is constant (often 0) well posed.
RIDGE = 1e-3


def hyper_latents(codec, images, log=None) -> list[list[np.ndarray]]:
    """For each image, its z^ (C, h, w) at every level of the codec's model, as the encoder makes it."""
    latent_codec = codec.model.latent_codec
    out = []
    for number, image in enumerate(images, 1):
        y, _, _, _ = codec._analysis_transform(image)
        out.append([latent_codec.analyse(y, level).z_hat.numpy().astype(np.int64)
                    for level in range(codec.model.n_levels)])
        if log and number % 50 == 0:
            log(f"  {number} of {len(images)} photos analysed")
    return out


def fit(latents: list[list[np.ndarray]], levels: int, channels: int, half_width: int) -> ZContextPrior:
    """A ZContextPrior fitted to z^ of several images ([image][level] -> (channels, h, w))."""
    prior = ZContextPrior(levels * channels, half_width)
    width = 4 * half_width + 1
    for level in range(levels):
        zs = [per_level[level] for per_level in latents]
        taps = np.concatenate([neighbour_taps(z).reshape(channels, N_TAPS, -1) for z in zs], axis=2)
        targets = np.concatenate([z.reshape(channels, -1) for z in zs], axis=1)
        for c in range(channels):
            row = level * channels + c
            x = np.concatenate([taps[c].T.astype(np.float64), np.ones((taps.shape[2], 1))], axis=1)
            solution = np.linalg.solve(x.T @ x + RIDGE * np.eye(N_TAPS + 1), x.T @ targets[c].astype(np.float64))
            weights = np.round(solution * (1 << FRAC_BITS)).astype(np.int32)
            mean, classes = predict(taps[c][None], weights[None], half_width)
            columns = targets[c] - mean[0] + 2 * half_width
            histogram = np.zeros((N_CLASSES, width))
            histogram += SMOOTHING * _geometric(half_width)
            np.add.at(histogram, (classes[0], columns), 1)
            prior.weights[row] = torch.from_numpy(weights)
            prior.counts[row] = quantize_pmf(torch.from_numpy(histogram))
    return prior


def _geometric(half_width: int) -> np.ndarray:
    """Weights over the residuals -2k..2k that halve with every step from 0, summing to 1."""
    weights = 0.5 ** np.abs(np.arange(-2 * half_width, 2 * half_width + 1))
    return weights / weights.sum()


def bits_per_level(prior: ZContextPrior | None, codec, latents) -> list[float]:
    """Mean bits of z^ per image at each level: under `prior`, or (None) under the model's factorized prior."""
    latent_codec = codec.model.latent_codec
    channels = latent_codec.hyper_latent_channels
    means = []
    for level in range(codec.model.n_levels):
        total = 0.0
        for per_level in latents:
            z = per_level[level]
            total += (_factorized_bits(latent_codec, z, level) if prior is None
                      else prior.bits(z, level * channels))
        means.append(total / max(1, len(latents)))
    return means


def _factorized_bits(latent_codec, z: np.ndarray, level: int) -> float:
    return float(latent_codec._factorized_z_bits(torch.from_numpy(z)[None].float(), torch.tensor([level]))[0])


def write_model_folder(source: str | Path, out: str | Path, prior: ZContextPrior) -> None:
    """Copy the model folder `source` to `out` with this z context: config.json gains "z_context": true and
    the weights file the context's two tensors; every stored tensor of the source is kept byte for byte."""
    source, out = Path(source), Path(out)
    state = load_file(str(source / WEIGHTS_NAME))
    state["latent_codec.z_context.weights"] = prior.weights.clone().contiguous()
    state["latent_codec.z_context.counts"] = prior.counts.clone().contiguous()
    config = json.loads((source / "config.json").read_text())
    config["z_context"] = True
    with atomic_output(out) as tmp:
        tmp.mkdir()
        for path in sorted(source.iterdir()):
            if path.is_file() and path.name not in (WEIGHTS_NAME, "config.json"):
                shutil.copyfile(path, tmp / path.name)
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        for path in tmp.iterdir():
            path.chmod(0o644)
