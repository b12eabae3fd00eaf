#!/usr/bin/env python
"""Fit a trained model's z context on training photos and write the model folder that codes with it.

    python train/fit_z_context.py --model gencodec/weights/pixel --data ../shared/data/train \\
        --photos 300 --out models/pixel-zcontext

The context (gencodec.entropy.z_context) predicts each value of the hyper-latent z^ from its decoded
neighbours, and codes the residual with tables chosen by how busy the neighbourhood is. It is fitted to
the model as stored, so fit it last, after any export that rounds weights. The networks are copied
byte for byte: every decoded picture stays as it was, and only the files change (they shrink). The
table it prints compares z^'s bits per photo under the model's factorized prior and under the context,
on photos held out from the fit.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from gencodec.errors import GencodecError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the model folder (or shipped name) to fit the context to")
    p.add_argument("--data", required=True, help="a folder of training photos (searched recursively)")
    p.add_argument("--photos", type=int, default=300, help="photos drawn at random to fit on (default 300)")
    p.add_argument("--held-out", type=int, default=40,
                   help="further photos, not fitted on, to measure the saving on (default 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draw of photos (default 0)")
    p.add_argument("--out", required=True, help="model folder to write")
    args = p.parse_args(argv)
    if args.photos < 1 or args.held_out < 0:
        raise GencodecError("--photos must be at least 1 and --held-out at least 0")

    import gencodec
    from gencodec.collection import find_files
    from gencodec.imageio import IMAGE_SUFFIXES
    from gencodec.pretrained import resolve
    from gencodec.training.z_context_fit import bits_per_level, fit, hyper_latents, write_model_folder

    source = resolve(args.model)
    codec = gencodec.load(source)
    images = find_files(args.data, tuple(IMAGE_SUFFIXES))
    wanted = args.photos + args.held_out
    if len(images) < wanted:
        raise GencodecError(f"'{args.data}' has {len(images)} photos; {wanted} are needed")
    chosen = [images[i] for i in np.random.default_rng(args.seed).choice(len(images), wanted, replace=False)]
    print(f"analysing {wanted} photos at {codec.model.n_levels} coding levels")
    latents = hyper_latents(codec, chosen, log=print)
    lc = codec.model.latent_codec
    prior = fit(latents[:args.photos], codec.model.n_levels, lc.hyper_latent_channels, lc.z_prior.half_width)
    if args.held_out:
        held_out = latents[args.photos:]
        before, after = bits_per_level(None, codec, held_out), bits_per_level(prior, codec, held_out)
        print(f"bits of z^ per photo, mean over {args.held_out} held-out photos")
        print("| coding level | factorized prior | z context | saved |")
        print("|---|---|---|---|")
        for level, (b, a) in enumerate(zip(before, after)):
            print(f"| {level} | {b:.0f} | {a:.0f} | {100 * (1 - a / b):.0f}% |")
    write_model_folder(source, args.out, prior)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GencodecError as exc:
        print(f"fit_z_context: error: {exc}", file=sys.stderr)
        sys.exit(1)
