#!/usr/bin/env python
"""Export a release model folder from a training checkpoint or another model folder.

    python train/export.py --config configs/base.yaml \\
        --checkpoint runs/base/codec/checkpoints/checkpoint-2000 --out models/base-2000
    python train/export.py --model runs/pixel/model --half --out gencodec/weights/pixel
    python train/export.py --model runs/latent/model --weights int8 --out gencodec/weights/latent
    python train/export.py --model gencodec/weights/pixel --half --colour-offset on --out models/pixel-offset
    python train/export.py --model gencodec/weights/pixel --half --rungs '[[5, 4, 7], [7, 1, null]]' --out M
    python train/export.py --model M --half --search-lambdas '[4e-7, 1.07e-6, ...]' --out M2
    python train/export.py --model CODEC --denoiser-from DECODER --half --out M3

The folder is exactly what `gencodec.load` and `--model` read: config.json and
safetensors with the entropy tables built. (Each stage of train/train.py also
exports its final model by itself; this is for the checkpoints in between. The
steps recorded are the checkpoint's own: those of its stage.) --half stores the
float weights in float16, --weights int8 the large ones in int8 with a scale
per output channel (a quarter of float32); either builds the tables from the
rounded weights, so the folder holds exactly the rounded model
(gencodec.weight_storage): measure that model, not the one before.
--search-lambdas sets the encoder search's trade-offs (encoder.json,
gencodec.encoder_search): the lambdas the codec was trained with, one per
coding level. A checkpoint takes its config's lambdas by default, a model
folder keeps its own. --denoiser-from puts another model's generative decoder
(the same shape) beside a model's codec: a decoder stage trains on a frozen
codec, so its denoiser can ride along with that codec's later fine-tunes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetensors.torch import load_file

from gencodec.encoder_search import SearchSettings
from gencodec.errors import GencodecError
from gencodec.extras import require_extra
from gencodec.pretrained import load_model, model_class
from gencodec.rungs import rungs_of
from gencodec.training.export import export_model
from gencodec.weight_storage import PRECISIONS


def _set_colour_offset(model, choice: str | None) -> None:
    if choice is not None:
        model.register_to_config(colour_offset=choice == "on")


def _set_rungs(model, choice: str | None) -> None:
    """--rungs: a JSON list of [level, downscale, regenerate] (gencodec.rungs), or 'none'."""
    if choice is None:
        return
    try:
        rungs = None if choice == "none" else json.loads(choice)
        rungs_of({"rungs": rungs}, model.config.n_levels)
    except ValueError as exc:
        raise GencodecError(f"--rungs: {exc}") from None
    model.register_to_config(rungs=rungs)


def _set_search(model, choice: str | None, default=None) -> None:
    """--search-lambdas: a JSON list of one lambda per coding level, or 'none' (the encoder does not search)."""
    if choice is None:
        if default is not None:
            model.encoder_search = SearchSettings(tuple(float(v) for v in default))
        return
    try:
        lambdas = None if choice == "none" else json.loads(choice)
        if lambdas is not None and (not isinstance(lambdas, list) or len(lambdas) != model.config.n_levels):
            raise ValueError(f"give a JSON list of {model.config.n_levels} numbers, one per coding level")
        model.encoder_search = None if lambdas is None else SearchSettings(tuple(float(v) for v in lambdas))
    except (ValueError, TypeError) as exc:
        raise GencodecError(f"--search-lambdas: {exc}") from None


def _take_denoiser(model, source: str | None) -> None:
    """--denoiser-from: the generative decoder's weights from another model folder of the same shape."""
    if source is None:
        return
    donor = load_model(source)
    if model.denoiser is None or donor.denoiser is None:
        raise GencodecError("--denoiser-from: both models need a generative decoder")
    if dict(donor.config.generative_decoder or {}) != dict(model.config.generative_decoder or {}):
        raise GencodecError(f"--denoiser-from: '{source}' has another generative decoder "
                            f"({donor.config.generative_decoder}, here {model.config.generative_decoder})")
    model.denoiser.load_state_dict(donor.denoiser.state_dict())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="the YAML config the run was trained with (with --checkpoint)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint-<step> folder of a run")
    source.add_argument("--model", help="a model folder (e.g. a run's model/) to re-export")
    p.add_argument("--stage", help="the stage the checkpoint belongs to (with --checkpoint); default: the "
                                   "name of the folder above its checkpoints/")
    p.add_argument("--half", action="store_true", help="store float weights in float16 (half the size)")
    p.add_argument("--weights", choices=PRECISIONS, default=None,
                   help="how to store the float weights; default: float16 with --half, else float32")
    p.add_argument("--colour-offset", choices=("on", "off"),
                   help="whether the model's files carry a colour offset (gencodec.colour_offset): it needs no "
                        "training, so a trained model can take it on; default: as the source model")
    p.add_argument("--rungs", metavar="JSON",
                   help="the file levels as a JSON list of [coding level, downscale 1/2/4, regenerate level or "
                        "null] (gencodec.rungs), or 'none' for one full-size level per coding level; it needs no "
                        "training; default: as the source model")
    p.add_argument("--search-lambdas", metavar="JSON",
                   help="the encoder search's trade-off per coding level as a JSON list (the lambdas the codec "
                        "trained with; gencodec.encoder_search), or 'none' for an encoder that does not search; "
                        "it changes which code the encoder picks, never how files decode; default: a model "
                        "folder's own, a checkpoint's config's lambdas")
    p.add_argument("--denoiser-from", metavar="MODEL",
                   help="with --model: take the generative decoder's weights from this model folder (the same "
                        "shape), e.g. a decoder stage's export, keeping the source model's codec")
    p.add_argument("--out", required=True, help="model folder to write")
    args = p.parse_args(argv)
    if args.model:
        model = load_model(args.model)
        _set_colour_offset(model, args.colour_offset)
        _set_rungs(model, args.rungs)
        _set_search(model, args.search_lambdas)
        _take_denoiser(model, args.denoiser_from)
        steps = int(model.config.trained_steps)
        # The licences of pretrained weights inside the model travel with it.
        licences = {path.name: path for path in sorted(Path(args.model).glob("LICENSE*"))}
        export_model(model, args.out, steps, half=args.half, weights=args.weights, files=licences)
        print(f"exported {args.out} ({steps} steps, {args.weights or ('float16' if args.half else 'float32')})")
        return 0
    if not args.config:
        p.error("--checkpoint needs --config")
    if args.denoiser_from:
        p.error("--denoiser-from needs --model")
    ckpt = Path(args.checkpoint)
    weights = ckpt / "model.safetensors"
    if not weights.is_file() or not (ckpt / "COMPLETE").is_file():
        raise GencodecError(f"'{ckpt}' is not a complete checkpoint (no model.safetensors or COMPLETE marker)")
    with require_extra("train", "train/export.py"):
        from gencodec.training.config import load_config
    cfg = load_config(args.config)
    # A stage may change the model (its own `model:`, see TrainConfig.resolve): the
    # checkpoint's stage is the folder it sits in, OUT/<stage>/checkpoints/checkpoint-<step>.
    name = args.stage or ckpt.parent.parent.name
    if args.stage and name not in cfg.names:
        raise GencodecError(f"stage '{args.stage}' is not in {args.config}")
    model = model_class(cfg.family)(**(cfg.resolve(cfg.names.index(name)).model if name in cfg.names else cfg.model))
    state = load_file(str(weights))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise GencodecError(f"checkpoint does not match the config's model ({len(missing)} missing, "
                            f"{len(unexpected)} unexpected tensors, e.g. {(missing or unexpected)[0]})")
    _set_colour_offset(model, args.colour_offset)
    _set_rungs(model, args.rungs)
    _set_search(model, args.search_lambdas, default=cfg.resolve(cfg.names.index(name)).lambdas
                if name in cfg.names else cfg.lambdas)
    steps = int((ckpt / "COMPLETE").read_text().strip() or 0)
    export_model(model, args.out, steps, half=args.half, weights=args.weights)
    print(f"exported {args.out} ({steps} steps, {args.weights or ('float16' if args.half else 'float32')})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GencodecError as exc:
        print(f"export: error: {exc}", file=sys.stderr)
        sys.exit(1)
