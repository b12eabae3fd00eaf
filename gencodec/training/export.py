"""Release export: a trained model written as a model folder, with its entropy tables built."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..fileio import atomic_output
from ..model import CodecModel
from ..pretrained import WEIGHTS_NAME


def round_to_half(model: CodecModel) -> None:
    """Round every float parameter to float16 precision, in place (the model stays float32).

    The entropy tables are built afterwards from the rounded weights, and the
    integer scale path quantizes its own weights, so a model saved this way in
    half precision and loaded back in float32 computes exactly what the rounded
    model did: halving the file changes no decoded symbol.
    """
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.copy_(p.half().float())


def export_model(model: CodecModel, out: str | os.PathLike, trained_steps: int, half: bool = False,
                 files: dict[str, Path] | None = None) -> None:
    """Write a release model folder: entropy tables built, steps recorded, replaced atomically.

    `half` stores the float parameters in float16 (half the file; see
    round_to_half); buffers, the entropy tables among them, stay exact.
    `files` are copied in beside the weights ({name in the folder: source}),
    such as the licence of pretrained weights the model holds.
    """
    out = Path(out)
    model = copy.deepcopy(model).float().cpu().eval()
    if half:
        round_to_half(model)
    model.update_tables()
    model.register_to_config(trained_steps=int(trained_steps))
    with atomic_output(out) as tmp:
        model.save_pretrained(tmp)
        if half:
            weights = tmp / WEIGHTS_NAME
            params = {name for name, p in model.named_parameters() if p.is_floating_point()}
            state = {k: (v.half() if k in params else v).contiguous() for k, v in load_file(str(weights)).items()}
            save_file(state, str(weights), metadata={"format": "pt"})
            weights.chmod(0o644)  # as save_pretrained leaves its files: readable by everyone
        for name, source in (files or {}).items():
            shutil.copyfile(source, tmp / name)
