"""A stage's model: built from its settings, then loaded from its warm start, each step said aloud.

A stage starts from the export of the stage before it, or from the model
folder its `init` names; the warm start must fit the stage's model but for
modules added as the identity (GenCodecModel.ADDABLE_MODULES) and the
networks the stage starts afresh (`fresh`). `level_init` then re-levels the
entropy model (HyperpriorLatentCodec.copy_levels). A latent-family stage
may take its autoencoder from another model (`autoencoder_from`): a
distilled fast autoencoder under a trained codec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import GencodecError
from ..model import CodecModel
from ..pretrained import load_model, model_class
from .checkpoints import exported_steps
from .config import Stage


def build_stage_model(stage: Stage, out: Path, say: Callable[[str], None] = print) -> tuple[CodecModel, int]:
    """The stage's model, from its warm start if it has one; and the steps the warm start was trained.

    A latent-family model built from scratch takes its autoencoder's weights from `stage.autoencoder`.
    """
    cls = model_class(stage.family)
    model = cls(**stage.model)
    init = stage.warm_start(out)
    if init is None:
        if stage.family == "latent":
            model.load_autoencoder(stage.autoencoder)
            say(f"stage '{stage.name}': the autoencoder's weights from {stage.autoencoder}")
        _take_autoencoder(model, stage, say)
        return model, 0
    name, own = stage.name, stage.config
    steps = exported_steps(init)
    if steps is None:
        raise GencodecError(f"stage '{name}' starts from '{init}', which holds no exported model; "
                            "run the stage before it first")
    try:
        added = model.load_warm_start(load_model(init).state_dict(), fresh=tuple(own.fresh))
    except ValueError as exc:
        raise GencodecError(f"stage '{name}': the warm start {init} does not fit the config's model: {exc}") from None
    say(f"stage '{name}': warm start from {init} ({steps} steps)")
    replaced = ("image_encoder.", "image_decoder.") if own.autoencoder_from else ()
    for module in added:
        if not f"{module}.".startswith(replaced):  # autoencoder_from's own say how they start
            say(f"stage '{name}': {module} is new ({model.how_new_modules_start(module)})")
    for network in own.fresh:
        say(f"stage '{name}': the {network} starts afresh, not from the warm start")
    if own.level_init is not None:
        try:
            model.latent_codec.copy_levels(list(own.level_init), own.level_init_log_gain_offsets,
                                           own.level_init_log_z_gain_offsets)
        except ValueError as exc:
            raise GencodecError(f"stage '{name}': level_init: {exc}") from None
        say(f"stage '{name}': levels start from levels {list(own.level_init)}")
    _take_autoencoder(model, stage, say)
    return model, steps


def _take_autoencoder(model: CodecModel, stage: Stage, say: Callable[[str], None]) -> None:
    """The autoencoder of the model folder `autoencoder_from` names, in place of the model's own."""
    source = stage.config.autoencoder_from
    if not source:
        return
    if exported_steps(Path(source)) is None:
        raise GencodecError(f"stage '{stage.name}': autoencoder_from '{source}' holds no exported model")
    other = load_model(source)
    if other.config.autoencoder != model.config.autoencoder:
        raise GencodecError(f"stage '{stage.name}': autoencoder_from '{source}' has autoencoder "
                            f"'{other.config.autoencoder}', the stage's model '{model.config.autoencoder}'")
    for name in ("image_encoder", "image_decoder"):
        getattr(model, name).load_state_dict(getattr(other, name).state_dict())
    say(f"stage '{stage.name}': the autoencoder ({other.config.autoencoder}) from {source}")
