#!/usr/bin/env python
"""Export a release model folder from a training checkpoint.

    python train/export.py --config configs/base.yaml \\
        --checkpoint runs/base/codec/checkpoints/checkpoint-2000 --out models/base-2000

The folder is exactly what `gencodec.load` and `--model` read: config.json and
safetensors with the entropy tables built. (Each stage of train/train.py also
exports its final model by itself; this is for the checkpoints in between. The
steps recorded are the checkpoint's own: those of its stage.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from safetensors.torch import load_file

from gencodec.errors import GencodecError
from gencodec.model import GenCodecModel
from gencodec.pretrained import export_model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the YAML config the run was trained with")
    p.add_argument("--checkpoint", required=True, help="a checkpoint-<step> folder of a run")
    p.add_argument("--out", required=True, help="model folder to write")
    args = p.parse_args(argv)
    ckpt = Path(args.checkpoint)
    weights = ckpt / "model.safetensors"
    if not weights.is_file() or not (ckpt / "COMPLETE").is_file():
        raise GencodecError(f"'{ckpt}' is not a complete checkpoint (no model.safetensors or COMPLETE marker)")
    with open(args.config) as f:
        cfg = yaml.safe_load(f)
    model = GenCodecModel(**cfg["model"])
    state = load_file(str(weights))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise GencodecError(f"checkpoint does not match the config's model ({len(missing)} missing, "
                            f"{len(unexpected)} unexpected tensors, e.g. {(missing or unexpected)[0]})")
    steps = int((ckpt / "COMPLETE").read_text().strip() or 0)
    export_model(model, args.out, steps)
    print(f"exported {args.out} ({steps} steps)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GencodecError as exc:
        print(f"export: error: {exc}", file=sys.stderr)
        sys.exit(1)
