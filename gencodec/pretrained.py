"""Finding and loading models by name or folder, with no network access."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .constants import DEFAULT_MODEL, UNTRAINED
from .errors import ModelNotFoundError
from .model import GenCodecModel

#: Models shipped inside the package live in gencodec/weights/<name>/.
SHIPPED_DIR = Path(__file__).parent / "weights"


def shipped_models() -> list[str]:
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "config.json").is_file())


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A model folder for a shipped model's name or a path; ModelNotFoundError otherwise."""
    path = Path(name_or_path)
    if (path / "config.json").is_file():
        return path
    shipped = SHIPPED_DIR / str(name_or_path)
    if not path.is_absolute() and (shipped / "config.json").is_file():
        return shipped
    if str(name_or_path) == DEFAULT_MODEL:
        raise ModelNotFoundError(
            f"the default model is missing from this installation ({SHIPPED_DIR / DEFAULT_MODEL}); "
            "reinstall gencodec, or pass a model folder made by train/train.py")
    if path.exists():
        raise ModelNotFoundError(f"'{name_or_path}' is not a model folder (it has no config.json)")
    names = ", ".join(shipped_models() + [UNTRAINED])
    raise ModelNotFoundError(f"no model folder or shipped model named '{name_or_path}' (shipped: {names})")


def untrained_model(**config) -> GenCodecModel:
    """A randomly initialised model with its tables built; for tests and pipeline checks only."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        model = GenCodecModel(**config)
    finally:
        torch.random.set_rng_state(state)
    model.update_tables()
    return model.eval()


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL) -> GenCodecModel:
    if str(name_or_path) == UNTRAINED:
        return untrained_model()
    folder = resolve(name_or_path)
    # low_cpu_mem_usage=False: build the modules for real, so every buffer
    # (the entropy tables) is materialised from the file, never left on 'meta'.
    model = GenCodecModel.from_pretrained(folder, low_cpu_mem_usage=False)
    # safetensors may hand back tensors at unaligned addresses inside the file
    # buffer, and the CPU kernels then take other code paths with other
    # rounding: copies into fresh (aligned) memory make a loaded model compute
    # exactly what the saved one did.
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            tensor.data = tensor.data.clone()
    if not model.latent_codec.z_prior.tables_ready:
        raise ModelNotFoundError(f"model folder '{folder}' has no entropy tables; export it with update_tables()")
    return model.eval()
