#!/usr/bin/env python
"""Train gencodec: one plain loop, run with `python` on a CPU or `accelerate launch` on GPUs.

    python train/train.py --config configs/tiny.yaml --data PHOTOS --out runs/tiny --cpu
    accelerate launch --config_file configs/accelerate/1node_8gpu.yaml \\
        train/train.py --config configs/base.yaml --out runs/base
    python train/train.py --config configs/base.yaml --out runs/base --resume latest

The config (gencodec.training.config) is checked in full before any stage
starts. Its `stages` run in order (codec, then decoder, then joint; see
gencodec.training.objectives), each by gencodec.training.runner, and each has
its own folder in the run:

    OUT/<stage>/checkpoints/checkpoint-<step>/   accelerate state: model, optimizers,
                                                 schedulers, EMA, RNG, step
    OUT/<stage>/metrics.csv                      one row per logged step
    OUT/<stage>/model/                           the exported model (what gencodec.load reads)

A stage starts from the exported model of the stage before it (or from the
model folder its `init` names) and says so; it is done once its exported
model has its steps. `--resume latest` continues an unfinished stage from its
newest complete checkpoint. OUT/model is the final stage's export.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gencodec.errors import GencodecError
from gencodec.extras import MissingExtraError, require_extra

try:
    with require_extra("train", "train/train.py"):
        import lpips  # noqa: F401  (the decoder stages' loss: without it a run would stop stages in)
        from gencodec.training.config import load_config
        from gencodec.training.config import stage_model_config  # noqa: F401  (for scripts that import train.py)
        from gencodec.training.runner import RunOptions, run
except MissingExtraError as exc:
    if __name__ != "__main__":
        raise
    print(f"train.py: error: {exc}", file=sys.stderr)
    sys.exit(1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--out", required=True, help="run folder: one sub-folder per stage, and model/")
    p.add_argument("--data", help="training images (folder or tar shards); overrides data.train")
    p.add_argument("--resume", choices=["latest"], help="continue unfinished stages from their newest checkpoint")
    p.add_argument("--steps", type=int, help="override every stage's number of steps (smoke tests)")
    p.add_argument("--stages", help="comma-separated subset of the config's stages to run, in config order")
    p.add_argument("--lpips-weights", help="LPIPS AlexNet weights file (or set GENCODEC_LPIPS_WEIGHTS)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config)
    run(cfg, RunOptions(out=Path(args.out), data=args.data, resume=args.resume == "latest", steps=args.steps,
                        stages=args.stages.split(",") if args.stages else None,
                        lpips_weights=args.lpips_weights, cpu=args.cpu))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GencodecError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
