"""What a stage trains: the modules of each objective, their optimizer groups, and what the EMA averages."""

from __future__ import annotations

import torch

from ..model import CodecModel

#: Parameters of the entropy model proper: the z densities, the level gains and level biases.
#: They see small gradients (only the rate term reaches them), so they may train at a higher rate.
ENTROPY_PARAMETERS = ("latent_codec.z_prior.", "latent_codec.log_gain", "latent_codec.log_z_gain",
                      "latent_codec.scale_net.level_bias")


def trained_modules(model: CodecModel, kind: str, train_synthesis: bool = False) -> list[torch.nn.Module]:
    """codec: all but the denoiser; decoder: the denoiser (and the base synthesis G with
    `train_synthesis`); joint: everything. Never the model's FROZEN modules (a pretrained autoencoder),
    but for distill, which trains those only."""
    if kind == "decoder":
        return [model.denoiser, model.synthesis] if train_synthesis else [model.denoiser]
    if kind == "distill":  # the latent family's (fast) autoencoder, and nothing else
        return [getattr(model, name) for name in model.FROZEN]
    skipped = set(model.FROZEN) | ({"denoiser"} if kind == "codec" else set())
    return [m for name, m in model.named_children() if name not in skipped]


def trainable_parameters(model: CodecModel, kind: str, train_synthesis: bool = False) -> list[torch.nn.Parameter]:
    """The parameters of trained_modules, set to train; all others are frozen."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for m in trained_modules(model, kind, train_synthesis) for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def averaged_parameters(model: CodecModel, train_synthesis: bool = False) -> list[torch.nn.Parameter]:
    """What the EMA of a decoder or joint stage averages: the networks a decoder stage trains."""
    return [p for m in trained_modules(model, "decoder", train_synthesis) for p in m.parameters()]


def parameter_groups(model: CodecModel, params: list[torch.nn.Parameter], lr: float,
                     entropy_lr_scale: float) -> list[dict]:
    """Optimizer groups: the entropy model's parameters at lr * entropy_lr_scale, the rest at lr."""
    wanted = {id(p) for p in params}
    entropy = [p for name, p in model.named_parameters()
               if id(p) in wanted and name.startswith(ENTROPY_PARAMETERS)]
    entropy_ids = {id(p) for p in entropy}
    groups = [{"params": [p for p in params if id(p) not in entropy_ids], "lr": lr}]
    if entropy:
        groups.append({"params": entropy, "lr": lr * entropy_lr_scale})
    return groups
