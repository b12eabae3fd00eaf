"""The training tools' commands: `gencodec pack` and `gencodec cache-latents`.

They need the `gencodec[train]` extra; a missing package is reported as one
line that names it. Each command imports its implementation when it runs.
"""

from __future__ import annotations

import argparse
import sys

from gencodec.cli import common
from gencodec.cli.common import EXIT_OK
from gencodec.constants import IMAGE_SUFFIXES

EXTRA = "train"
#: pack_shards' defaults, for --help (gencodec.training.data itself needs torch).
PACK_MAX_SHARD_MB = 45
PACK_QUALITY = 90

PACK_DESCRIPTION = """\
Pack the images under SRC (recursively) into webdataset-style tar shards in
OUT (shard-000000.tar, shard-000001.tar, ...), with an index.json written
last. A few large files copy and stream far better than many small ones, and
a re-encoded pack (--max-side, --quality) makes a training set small enough to
travel. A compact pack keeps one central square crop of each photo (--crop),
as WebP (--format webp), in a size budget (--budget-mb): the photos are then
taken in a shuffled order until the next would go over the budget. Images that are unreadable or under 64 px on the short side are
skipped with a warning. Shards of an earlier pack into OUT are replaced."""

PACK_EPILOG = """\
example:
  gencodec pack photos/ shards/
  gencodec pack photos/ shards/ --max-side 768 --quality 90 --max-shard-mb 100
  gencodec pack photos/ pack/ --max-side 512 --crop 256 --format webp --quality 90 --budget-mb 14"""


CACHE_DESCRIPTION = """\
Encode every image of SRC (a folder of images, or shards made by 'gencodec
pack') once with the frozen TAEF2 encoder, and write the images with their
latents into tar shards in OUT (shard-000000.tar, ..., index.json last).
Models that work in TAEF2's latent space then train on the cached latents
without ever running the encoder, and stages that also compare pixels read
the matching crop of the stored image.

Each sample holds the image exactly as encoded (the original JPEG when it was
not changed, else PNG) and NNNNNNNN.latent.npy: float16, 32 x H/8 x W/8.
Images are shrunk to --max-side if given, then centre-cropped to multiples of
8 px (losing at most 7 px of width and of height). --mirror also stores the latent of the
left-right mirrored image (latent_mirror.npy), for training with flips: the
encoder is not mirror-symmetric, so a flipped latent is not the latent of the
flipped image. index.json records the sha256 of both TAEF2 weight files.
Unreadable images are skipped with a warning; shards of an earlier run into
OUT are replaced."""

CACHE_EPILOG = """\
example:
  gencodec cache-latents shards/ latents/ --taef2 weights/taef2 --mirror
  gencodec cache-latents photos/ latents/ --taef2 weights/taef2 --max-side 768 --device cuda --batch-size 8"""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a data warning as one line instead of Python's file:line form."""
    print(f"{common.PROG}: warning: {common.one_line(message)}", file=sys.stderr)


def _pack(args: argparse.Namespace) -> list:
    """Run pack_shards with the options given (its own defaults for the others); return the shard paths."""
    from gencodec.training.data import pack_shards

    options = {"max_side": args.max_side, "quality": args.quality, "crop": args.crop,
               "image_format": args.format}
    if args.max_shard_mb is not None:
        options["max_shard_bytes"] = int(args.max_shard_mb * 1e6)
    if args.budget_mb is not None:
        options["budget_bytes"] = int(args.budget_mb * 1e6)
    return pack_shards(args.src, args.out, **options)


def cmd_pack(args: argparse.Namespace) -> int:
    import json
    import warnings
    from pathlib import Path

    from gencodec.training.data import INDEX_NAME, DataWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)
        warnings.showwarning = _show_warning
        shards = _pack(args)
    index = json.loads((Path(args.out) / INDEX_NAME).read_text())
    total = sum(shard["bytes"] for shard in index["shards"])
    left_out = index.get("left_out_by_budget") or 0
    budget = f", {left_out} left out by the {args.budget_mb:g} MB budget" if left_out else ""
    print(f"packed {index['images']} images into {len(shards)} shards, {total / 1e6:.1f} MB in total "
          f"({index['skipped']} skipped{budget}) -> {args.out}")
    return EXIT_OK


def cmd_cache_latents(args: argparse.Namespace) -> int:
    import json
    import time
    import warnings
    from pathlib import Path

    from gencodec.training.data import INDEX_NAME, DataWarning
    from gencodec.training.latents import cache_latents

    options = {"max_side": args.max_side, "batch_size": args.batch_size, "mirror": args.mirror,
               "device": args.device, "log": common.info}
    if args.max_shard_mb is not None:
        options["max_shard_bytes"] = int(args.max_shard_mb * 1e6)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)
        warnings.showwarning = _show_warning
        shards = cache_latents(args.src, args.out, args.taef2, **options)
    seconds = time.perf_counter() - start
    index = json.loads((Path(args.out) / INDEX_NAME).read_text())
    total = sum(shard["bytes"] for shard in index["shards"])
    print(f"cached {index['images']} images into {len(shards)} shards, {total / 1e6:.1f} MB in total "
          f"({index['skipped']} skipped) in {seconds:.0f} s -> {args.out}")
    return EXIT_OK


def _register_cache_latents(subparsers) -> None:
    p = common.add_command(subparsers, "cache-latents", common.needs_extra(EXTRA, cmd_cache_latents),
                           help="encode images once with TAEF2 into latent shards for training",
                           description=CACHE_DESCRIPTION, epilog=CACHE_EPILOG)
    p.add_argument("src", metavar="SRC", help="folder of images, or pack shards (a .tar or a folder of them)")
    p.add_argument("out", metavar="OUT", help="folder to write shard-NNNNNN.tar and index.json into")
    p.add_argument("--taef2", required=True, metavar="FOLDER",
                   help="folder holding taef2_encoder.safetensors and taef2_decoder.safetensors")
    p.add_argument("--max-side", type=int, metavar="N", help="shrink so the longer side is at most N px")
    p.add_argument("--mirror", action="store_true",
                   help="also store the latent of each mirrored image (for flips in training)")
    p.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="encode up to N same-sized images at once; default: 1")
    p.add_argument("--device", default="cpu", help="where to run the encoder, e.g. cuda; default: cpu")
    p.add_argument("--max-shard-mb", type=float, default=None, metavar="MB",
                   help=f"largest shard size in MB (10^6 bytes); default: {PACK_MAX_SHARD_MB}")


def register(subparsers) -> None:
    """Add pack and cache-latents to the `gencodec` parser's subparsers."""
    p = common.add_command(subparsers, "pack", common.needs_extra(EXTRA, cmd_pack),
                           help="pack an image folder into tar shards for training",
                           description=PACK_DESCRIPTION, epilog=PACK_EPILOG)
    p.add_argument("src", metavar="SRC", help=f"folder of images ({' '.join(IMAGE_SUFFIXES)})")
    p.add_argument("out", metavar="OUT", help="folder to write shard-NNNNNN.tar and index.json into")
    p.add_argument("--max-shard-mb", type=float, default=None, metavar="MB",
                   help=f"largest shard size in MB (10^6 bytes); default: {PACK_MAX_SHARD_MB}")
    p.add_argument("--max-side", type=int, metavar="N",
                   help="downscale so the longer side is at most N px, and re-encode as JPEG")
    p.add_argument("--quality", type=int, metavar="Q",
                   help=f"re-encode at quality Q; default: {PACK_QUALITY} with --max-side, --crop or --format webp, "
                        "else keep the original files")
    p.add_argument("--crop", type=int, metavar="N",
                   help="keep only the central N x N square of each image (after --max-side); smaller ones "
                        "are skipped")
    p.add_argument("--format", choices=("jpeg", "webp"), default="jpeg",
                   help="re-encode as this format; default: jpeg")
    p.add_argument("--budget-mb", type=float, metavar="MB",
                   help="stop before the shards pass MB (10^6 bytes) in all, taking the images in a "
                        "shuffled order")
    _register_cache_latents(subparsers)
