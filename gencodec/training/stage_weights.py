"""A stage's trained weights alone, in a small file: what a time-limited run carries to the next one.

An accelerate checkpoint holds every weight in float32 and the optimizer's two
moments of each trained one: about 70 MB for the pixel model's codec stage, too
much to carry between short runs on a lent machine. The weights a stage trains
(gencodec.training.parameters.trained_modules) in float16 are 9 MB there, and
float16's 11 significant bits lie far below one optimizer step's change, so a
run that starts from them goes on where the last one stopped; only AdamW's
moments start again (a short warmup rebuilds them).

    save_stage_weights(model, "codec", path, steps=1234, stage="codec")
    steps = load_stage_weights(model, path, "codec")   # onto the stage's freshly built model

The file is safetensors; its metadata names the stage and the steps trained.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import GencodecError
from ..fileio import atomic_output
from ..model import CodecModel
from .parameters import trained_modules

#: Values beyond float16's range are stored in float32 (none in the shipped models).
FLOAT16_MAX = 65504.0


def stage_state(model: CodecModel, kind: str, train_synthesis: bool = False) -> dict[str, torch.Tensor]:
    """The parameters a stage of this kind trains, by name."""
    wanted = {id(p) for m in trained_modules(model, kind, train_synthesis) for p in m.parameters()}
    return {name: p.detach() for name, p in model.named_parameters() if id(p) in wanted}


def save_stage_weights(model: CodecModel, kind: str, path: Path, steps: int, stage: str,
                       train_synthesis: bool = False, dtype: torch.dtype = torch.float16) -> int:
    """Write the stage's trained weights (float16 where they fit) to `path`; returns its size in bytes."""
    state = {}
    for name, value in stage_state(model, kind, train_synthesis).items():
        fits = dtype != torch.float16 or value.abs().max().item() <= FLOAT16_MAX
        state[name] = value.to(dtype if fits else torch.float32).cpu().contiguous()
    path = Path(path)
    with atomic_output(path) as tmp:
        save_file(state, str(tmp), metadata={"stage": stage, "steps": str(int(steps)), "kind": kind})
    return path.stat().st_size


def load_stage_weights(model: CodecModel, path: Path, stage: str) -> int:
    """Copy the weights in `path` into `model` (each must exist there with its shape); returns the steps
    they were trained. A file of another stage is refused."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {name: f.get_tensor(name) for name in f.keys()}
    except (OSError, ValueError, RuntimeError) as exc:
        raise GencodecError(f"cannot read stage weights {str(path)!r}: {exc}") from None
    if meta.get("stage") != stage:
        raise GencodecError(f"{str(path)!r} holds weights of stage {meta.get('stage')!r}, not of stage {stage!r}")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            if name not in params or params[name].shape != value.shape:
                raise GencodecError(f"{str(path)!r} does not fit the stage's model: parameter {name!r} "
                                    + ("is not in it" if name not in params else
                                       f"is {tuple(params[name].shape)} there, {tuple(value.shape)} in the file"))
            params[name].copy_(value.to(params[name].dtype))
    return int(meta.get("steps", 0))
