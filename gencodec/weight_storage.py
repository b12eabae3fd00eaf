"""How a model folder stores its float weights: float32, float16, or int8 with a scale per output channel.

A release model is exported with its weights rounded to what the file holds,
and its entropy tables are built from the rounded weights; loading gives back
exactly the rounded weights in float32. So the smaller file changes no
decoded symbol of the model it holds, only the model itself (slightly), and
that model is what its card measures.

int8: every float weight of at least INT8_MIN_ELEMENTS elements and two or
more dimensions (convolutions, linear layers) is stored as int8 values q in
-127..127 and a float16 scale s per output channel (its first dimension),
and means q * s; the tensor `NAME` holds q and `NAME` + SCALE_SUFFIX holds s.
Other float parameters (biases, norms, gains) are stored in float16.
"""

from __future__ import annotations

import torch

PRECISIONS = ("float32", "float16", "int8")
SCALE_SUFFIX = ".int8_scale"
INT8_MIN_ELEMENTS = 1024


def _stored_as_int8(p: torch.Tensor) -> bool:
    return p.is_floating_point() and p.ndim >= 2 and p.numel() >= INT8_MIN_ELEMENTS


def int8_parts(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, scale) of a weight: symmetric, per output channel; the scale already rounded to float16."""
    amax = w.detach().float().abs().reshape(w.shape[0], -1).amax(1)
    scale = (amax / 127).clamp_min(torch.finfo(torch.float16).tiny).half()
    q = torch.round(w.detach().float() / scale.float().view(-1, *[1] * (w.ndim - 1))).clamp(-127, 127)
    return q.to(torch.int8), scale


def from_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale.float().view(-1, *[1] * (q.ndim - 1))


@torch.no_grad()
def round_weights(model: torch.nn.Module, precision: str) -> None:
    """Round every float parameter, in place, to what `precision` stores (the model stays float32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"weights must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return
    for p in model.parameters():
        if precision == "int8" and _stored_as_int8(p):
            p.copy_(from_int8(*int8_parts(p)))
        elif p.is_floating_point():
            p.copy_(p.half().float())


def stored_state(model: torch.nn.Module, state: dict[str, torch.Tensor], precision: str) -> dict[str, torch.Tensor]:
    """The tensors to write for a model already rounded by round_weights (buffers, the entropy tables among
    them, stay as they are)."""
    params = dict(model.named_parameters())
    out = {}
    for key, value in state.items():
        p = params.get(key)
        if p is None or not p.is_floating_point() or precision == "float32":
            out[key] = value
        elif precision == "int8" and _stored_as_int8(p):
            out[key], out[key + SCALE_SUFFIX] = int8_parts(value)
        else:
            out[key] = value.half()
    return {k: v.contiguous() for k, v in out.items()}


def loaded_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float weights of a stored state: int8 tensors with their scales made float again."""
    out = {}
    for key, value in state.items():
        if key.endswith(SCALE_SUFFIX):
            continue
        scale = state.get(key + SCALE_SUFFIX)
        out[key] = from_int8(value, scale) if scale is not None and value.dtype == torch.int8 else value
    return out
