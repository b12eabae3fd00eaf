"""Release export: a trained model written as a model folder, with its entropy tables built."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..encoder_search import write_settings
from ..fileio import atomic_output
from ..model import CodecModel
from ..pretrained import WEIGHTS_NAME
from ..weight_storage import round_weights, stored_state


def export_model(model: CodecModel, out: str | os.PathLike, trained_steps: int, half: bool = False,
                 files: dict[str, Path] | None = None, weights: str | None = None) -> None:
    """Write a release model folder: entropy tables built, steps recorded, replaced atomically.

    `weights` is how the float parameters are stored: "float32", "float16" (`half`), or "int8" with a
    scale per output channel (gencodec.weight_storage). The model is rounded to that first and its
    entropy tables built from the rounded weights, so the file changes no decoded symbol of the model it
    holds. Buffers, the entropy tables among them, stay exact. `files` are copied in beside the weights
    ({name in the folder: source}), such as the licence of pretrained weights the model holds. The
    encoder's search settings (`model.encoder_search`), where it has them, go into encoder.json.
    """
    precision = weights or ("float16" if half else "float32")
    out = Path(out)
    model = copy.deepcopy(model).float().cpu().eval()
    round_weights(model, precision)
    model.update_tables()
    model.register_to_config(trained_steps=int(trained_steps))
    with atomic_output(out) as tmp:
        model.save_pretrained(tmp)
        if precision != "float32":
            path = tmp / WEIGHTS_NAME
            save_file(stored_state(model, load_file(str(path)), precision), str(path), metadata={"format": "pt"})
            path.chmod(0o644)  # as save_pretrained leaves its files: readable by everyone
        for name, source in (files or {}).items():
            shutil.copyfile(source, tmp / name)
        if model.encoder_search is not None:
            write_settings(tmp, model.encoder_search)
