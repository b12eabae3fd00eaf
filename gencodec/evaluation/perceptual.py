"""LPIPS (AlexNet, version 0.1) that loads offline and has finite gradients everywhere.

Two problems with using the ``lpips`` package as-is for training:

* Its AlexNet backbone comes from torchvision, which downloads it; these
  machines are offline. :func:`load_lpips` builds the network with a random
  backbone (no download) and then loads the backbone from a local file
  (torchvision's ``features.*`` layout), checking that every tensor landed.
  It never silently keeps a random backbone: LPIPS with random features is a
  different, meaningless metric.
* ``lpips.normalize_tensor`` computes ``x / (sqrt(sum(x**2)) + eps)``. Where a
  feature vector is exactly zero (ReLU features of a flat dark patch, or any
  identical pair), the backward pass of ``sqrt`` at 0 is ``0 * inf = NaN``,
  which poisons the whole training step. :class:`SafeLPIPS` uses
  ``x * rsqrt(sum(x**2) + eps**2)`` instead: the same values (to float
  precision) and a finite gradient at 0. It is a subclass, so the ``lpips``
  module itself is left untouched.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import lpips
import torch
from lpips.lpips import spatial_average as _lpips_spatial_average
from lpips.lpips import upsample as _lpips_upsample

from ..errors import GencodecError

LPIPS_WEIGHTS_ENV = "GENCODEC_LPIPS_WEIGHTS"

# torchvision AlexNet feature index -> lpips slice holding it (only the convs have weights).
_ALEX_SLICE_OF_INDEX = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}

_EPS = 1e-10


def safe_normalize(x: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """Unit-normalise along channels like ``lpips.normalize_tensor``, finite gradient at x = 0.

    ``rsqrt(s + eps^2)`` equals ``1 / (sqrt(s) + eps)`` to float precision for
    any non-negligible s, and at s = 0 both give 1/eps (times x = 0), but
    only this form has a finite derivative there.
    """
    return x * torch.rsqrt(torch.sum(x * x, dim=1, keepdim=True) + eps * eps)


class SafeLPIPS(lpips.LPIPS):
    """``lpips.LPIPS`` whose forward normalises features with :func:`safe_normalize`.

    Same constructor and same outputs as ``lpips.LPIPS``; inputs in [-1, 1]
    (or [0, 1] with ``normalize=True``). It is a frozen metric, so ``train()``
    keeps it in eval mode (the linear heads have dropout, which would make
    the loss random if a parent module's ``.train()`` reached it).
    """

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, in0, in1, retPerLayer=False, normalize=False):
        if normalize:  # [0, 1] -> [-1, 1], as lpips does
            in0 = 2 * in0 - 1
            in1 = 2 * in1 - 1
        if self.version == "0.1":
            in0_input, in1_input = self.scaling_layer(in0), self.scaling_layer(in1)
        else:
            in0_input, in1_input = in0, in1
        outs0, outs1 = self.net.forward(in0_input), self.net.forward(in1_input)
        res = []
        for kk in range(self.L):
            diff = (safe_normalize(outs0[kk]) - safe_normalize(outs1[kk])) ** 2
            d = self.lins[kk](diff) if self.lpips else diff.sum(dim=1, keepdim=True)
            if self.spatial:
                res.append(_lpips_upsample(d, out_HW=in0.shape[2:]))
            else:
                res.append(_lpips_spatial_average(d, keepdim=True))
        val = res[0]
        for r in res[1:]:
            val = val + r
        return (val, res) if retPerLayer else val


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _load_backbone(model: torch.nn.Module, path: Path) -> None:
    """Copy torchvision-layout AlexNet features from `path` into model.net.slice1..5, strictly."""
    if not path.is_file():
        raise GencodecError(
            f"LPIPS weights not found: '{path}' (expected AlexNet features in torchvision's layout, "
            f"features.0.weight ... features.10.bias; pass a file or set {LPIPS_WEIGHTS_ENV})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, not a torch file, pickled objects...
        raise GencodecError(f"LPIPS weights unreadable: '{path}' ({_one_line(exc)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GencodecError(f"LPIPS weights file '{path}' is not a state dict of tensors")

    targets: dict[str, torch.nn.Parameter] = {}
    for index, k in _ALEX_SLICE_OF_INDEX.items():
        conv = getattr(model.net, f"slice{k}")._modules[str(index)]
        targets[f"features.{index}.weight"] = conv.weight
        targets[f"features.{index}.bias"] = conv.bias
    missing = sorted(set(targets) - set(state))
    unexpected = sorted(set(state) - set(targets))
    if missing or unexpected:
        raise GencodecError(
            f"LPIPS weights file '{path}' does not match AlexNet features: "
            f"missing {missing or 'none'}, unexpected {unexpected or 'none'}")
    for key, param in targets.items():
        if tuple(state[key].shape) != tuple(param.shape):
            raise GencodecError(
                f"LPIPS weights file '{path}': {key} has shape {tuple(state[key].shape)}, "
                f"expected {tuple(param.shape)}")
    with torch.no_grad():
        for key, param in targets.items():
            param.copy_(state[key].to(param.dtype))


def load_lpips(weights: str | Path | None = None) -> torch.nn.Module:
    """LPIPS (AlexNet, v0.1) as a frozen :class:`SafeLPIPS`, on the CPU; move it with ``.to()``.

    `weights` is a file of AlexNet features (torchvision layout); without it,
    the ``GENCODEC_LPIPS_WEIGHTS`` environment variable; without that, the
    torchvision download that lpips does normally (fails offline, with a
    GencodecError saying what to do). The linear heads always come from the
    lpips package itself.
    """
    if weights is None or str(weights) == "":
        weights = os.environ.get(LPIPS_WEIGHTS_ENV) or None
    with warnings.catch_warnings():  # lpips uses torchvision's deprecated `pretrained=` argument
        warnings.simplefilter("ignore", UserWarning)
        if weights is not None:
            model = SafeLPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
            _load_backbone(model, Path(weights).expanduser())
        else:
            try:
                model = SafeLPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=False, verbose=False)
            except Exception as exc:
                raise GencodecError(
                    "LPIPS needs the AlexNet backbone and it could not be downloaded "
                    f"({_one_line(exc)}); pass a weights file (AlexNet features, torchvision layout) "
                    f"or set {LPIPS_WEIGHTS_ENV}") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def lpips_or_none(weights: str | None, device, warn):
    """The LPIPS network, or None with a warning when no weights are at hand (a named bad file is an error).

    `warn(message)` reports a skip. Used by the evaluation commands, where LPIPS is optional.
    """
    named = weights or os.environ.get(LPIPS_WEIGHTS_ENV)
    if not named and os.environ.get("HF_HUB_OFFLINE") == "1":
        # Offline and no file: do not even try lpips' download of the AlexNet backbone.
        warn(f"LPIPS skipped: no AlexNet weights file (--lpips-weights or {LPIPS_WEIGHTS_ENV}) "
             "and HF_HUB_OFFLINE=1")
        return None
    try:
        return load_lpips(weights).to(device)
    except GencodecError as exc:
        if named:
            raise
        warn(f"LPIPS skipped: {' '.join(str(exc).split())}")
        return None
