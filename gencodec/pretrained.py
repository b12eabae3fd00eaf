"""Finding and loading models by name or folder, with no network access."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .constants import DEFAULT_ALIAS, DEFAULT_MODEL, UNTRAINED
from .encoder_search import read_settings
from .errors import ModelNotFoundError
from .model import CodecModel, GenCodecModel
from .weight_storage import loaded_state

#: Models shipped inside the package live in gencodec/weights/<name>/.
SHIPPED_DIR = Path(__file__).parent / "weights"


def shipped_models() -> list[str]:
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "config.json").is_file())


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A model folder for a shipped model's name (or 'default', the default's) or a path; ModelNotFoundError
    otherwise."""
    path = Path(name_or_path)
    if (path / "config.json").is_file():
        return path
    if str(name_or_path) == DEFAULT_ALIAS:
        name_or_path = path = Path(DEFAULT_MODEL)
    shipped = SHIPPED_DIR / str(name_or_path)
    if not path.is_absolute() and (shipped / "config.json").is_file():
        return shipped
    if str(name_or_path) == DEFAULT_MODEL:
        raise ModelNotFoundError(
            f"the default model is missing from this installation ({SHIPPED_DIR / DEFAULT_MODEL}); "
            "reinstall gencodec, or pass a model folder made by train/train.py")
    if path.exists():
        raise ModelNotFoundError(f"'{name_or_path}' is not a model folder (it has no config.json)")
    names = ", ".join(shipped_models() + [DEFAULT_ALIAS, UNTRAINED])
    raise ModelNotFoundError(f"no model folder or shipped model named '{name_or_path}' (shipped: {names})")


def untrained_model(family: str = "pixel", **config) -> CodecModel:
    """A randomly initialised model of a family with its tables built; for tests and pipeline checks only."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        model = model_class(family)(**config)
    finally:
        torch.random.set_rng_state(state)
    model.update_tables()
    return model.eval()


#: The model families, by the class name diffusers writes into config.json ("_class_name").
FAMILIES = {"GenCodecModel": "pixel", "LatentCodecModel": "latent"}


def model_class(family: str) -> type[CodecModel]:
    """The class of a family ("pixel" or "latent"); the latent one is imported only when asked for."""
    if family == "pixel":
        return GenCodecModel
    if family == "latent":
        from .latent_model import LatentCodecModel
        return LatentCodecModel
    raise ValueError(f"unknown model family '{family}' (known: pixel, latent)")


def _class_of(config: dict) -> type[CodecModel]:
    name = config.get("_class_name", "GenCodecModel")
    if name not in FAMILIES:
        raise ValueError(f"unknown model class '{name}' (known: {', '.join(FAMILIES)})")
    return model_class(FAMILIES[name])


#: The weights file of a model folder (diffusers' name, so that from_pretrained reads it too).
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL) -> CodecModel:
    """The model of a folder (config.json + safetensors) or a shipped model's name, in eval mode.

    The networks are built from the config and the file's tensors copied into
    them (float16 weights become float32): every tensor lives in the model's
    own memory, never at an unaligned address inside the file buffer, where
    the CPU kernels would take other code paths with other rounding. This is
    diffusers' from_pretrained without its hub machinery, which costs start-up.
    """
    if str(name_or_path) == UNTRAINED:
        return untrained_model()
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = resolve(name_or_path)
    weights = folder / WEIGHTS_NAME
    try:
        config = GenCodecModel.load_config(folder)
        model = _class_of(config).from_config(config)
        state = loaded_state(load_file(weights))
    except (OSError, ValueError, TypeError, SafetensorError) as exc:
        raise ModelNotFoundError(f"cannot load model folder '{folder}': {' '.join(str(exc).split())}") from exc
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        what = f"lacks '{missing[0]}'" if missing else f"has an unknown tensor '{unexpected[0]}'"
        raise ModelNotFoundError(f"model folder '{folder}' does not match its config: its weights file {what}")
    if not model.latent_codec.z_prior.tables_ready:
        raise ModelNotFoundError(f"model folder '{folder}' has no entropy tables; export it with update_tables()")
    z_context = model.latent_codec.z_context
    if z_context is not None and not z_context.tables_ready:
        raise ModelNotFoundError(f"model folder '{folder}' has no fitted z context; fit it with train/fit_z_context.py")
    model.encoder_search = read_settings(folder, model.n_levels)
    return model.eval()
