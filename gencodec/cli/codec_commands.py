"""The runtime's commands: `gencodec compress`, `gencodec decompress` and `gencodec info`.

Running them never imports gencodec.training or gencodec.evaluation; torch
and the model load inside the commands that need a model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gencodec.cli import common
from gencodec.cli.common import EXIT_ERROR, EXIT_OK, STDIO, GencodecError
from gencodec.constants import SCHEDULERS, SUFFIX

COMPRESS_DESCRIPTION = """\
Compress an image (PNG, JPEG, WebP, ... anything Pillow reads) into a .gcz
file. Transparent images are flattened onto white; EXIF orientation is applied.
A one-line summary (bytes, bits per pixel, level, size) goes to stderr.

Choose the rate with at most one of --level, --bpp and --max-bytes. --bpp and
--max-bytes search the model's ladder of levels for the highest level whose
real file fits the target, and fail (exit status 1) if not even level 0 fits;
the summary line says which level was chosen.

The encoder searches for each photo's code (--search-steps): a few gradient
steps that make the file smaller for as good a picture (9-30% smaller on
Kodak with the pixel model, within 1 s at 768x512 on 2 cores). By default
the number of steps follows the coded picture's size (2 at 768x512, 8 at
384x256, none above 786,432 coded pixels); decoding is the same either way.
"""

COMPRESS_EPILOG = """\
example:
  gencodec compress photo.png -o photo.gcz --level 2
  gencodec compress photo.png                  # writes photo.gcz next to it
  gencodec compress photo.png --max-bytes 4000 # the highest level that fits 4000 bytes
  gencodec compress photo.png --bpp 0.05       # ... that fits 0.05 bits per pixel
  gencodec compress photo.png --search-steps 16 # a slower encoder, a smaller file
  gencodec compress - -o - < photo.png > photo.gcz
  gencodec compress photos/ --out-dir codes/ --max-bytes 1500   # a folder: see "many files"
  gencodec compress 'shards/*.tar' @more.txt --out-dir codes/ --workers 2
"""

DECOMPRESS_DESCRIPTION = """\
Decompress a .gcz file into an image. The output format follows OUT's suffix
(.png, .jpg, .webp, ...); '-o -' writes PNG to stdout. The file must be decoded
with the model that wrote it.

With a model that has a generative decoder, --realism chooses between the
distortion-optimal reconstruction (0) and the fully generative one (1), with a
smooth trade in between; --steps and --seed fix the sampling. None of these is
stored in the file.

Determinism: a file always decodes into the same integer code, on any machine,
thread count or device. The same file, seed, steps and scheduler give the same
pixels, bit for bit, on the same machine with the same number of threads;
across thread counts, CPUs or devices a few pixel values may move by a level
(float kernels round differently).
"""

DECOMPRESS_EPILOG = """\
example:
  gencodec decompress photo.gcz -o decoded.png
  gencodec decompress photo.gcz -o sharp.png --realism 1 --steps 1 --seed 7
  gencodec decompress photo.gcz                # writes photo.png next to it
  gencodec decompress - -o - < photo.gcz > decoded.png
  gencodec decompress codes/ --out-dir decoded/ --realism 1        # many files: PNGs in the same layout
"""

INFO_DESCRIPTION = """\
Show what a .gcz file holds: its size in bytes, bits per pixel, level, image
size, format version and model fingerprint (4 hex digits). Only the header is
read and checked (magic, length, checksum, version); no model is loaded unless
--model is given, in which case info also says whether the file was written by
that model, and exits with status 1 if it was not.
"""

INFO_EPILOG = """\
example:
  gencodec info photo.gcz
  gencodec info photo.gcz --model path/to/model   # does this model decode it?
"""


# -- compress ---------------------------------------------------------------------------------

def _default_output(args: argparse.Namespace, suffix: str, what: str) -> str:
    """OUT when -o is not given: IN with `suffix`; a usage error when IN is stdin."""
    if args.input == STDIO:
        args.subparser.error(f"reading from stdin ('-') needs -o OUT ({what}, or '-' for stdout)")
    return str(Path(args.input).with_suffix(suffix))


def _summary(args: argparse.Namespace, details: str) -> None:
    """The one line on stderr that says what was written."""
    source, target = common.stdio_name(args.input, "<stdin>"), common.stdio_name(args.output, "<stdout>")
    common.info(f"{source} -> {target}: {details}")


def _check_rate(args: argparse.Namespace) -> None:
    if args.level is not None and args.level < 0:
        raise GencodecError(f"level {args.level} is out of range: levels start at 0")
    if args.max_bytes is not None and args.max_bytes <= 0:
        raise GencodecError(f"--max-bytes must be a positive integer, got {args.max_bytes}")
    if args.bpp is not None and not 0 < args.bpp < float("inf"):
        raise GencodecError(f"--bpp must be a positive number, got {args.bpp:g}")


def _batch_or_single(args: argparse.Namespace) -> bool:
    """True for a batch (gencodec.cli.batch); else args.input becomes the one input."""
    from gencodec.cli import batch

    if batch.is_batch(args):
        return True
    args.input = args.input[0]
    return False


def _add_batch_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("many files (several inputs, folders, globs, @list.txt, webdataset .tar shards)")
    group.add_argument("--out-dir", metavar="DIR", default=None,
                       help="write the outputs below DIR, in the inputs' layout, with DIR/manifest.jsonl (one "
                            "JSON line per input); a run started again skips what its manifest records")
    group.add_argument("--workers", metavar="N", type=common.positive_int, default=1,
                       help="N processes, each with its share of the CPU threads; default: %(default)s")
    group.add_argument("--batch-size", metavar="B", type=common.positive_int, default=None,
                       help="up to B images of the same size through the network at once: compress gives the "
                            "same bytes as one at a time (default: 8 on a GPU, 1 on the CPU); decompress may move "
                            "a few pixel values by a level, as other thread counts do (default: 1)")


def cmd_compress(args: argparse.Namespace) -> int:
    if _batch_or_single(args):
        from gencodec.cli import batch

        return batch.run_batch(args)
    if args.output is None:
        args.output = _default_output(args, SUFFIX, "a path")
    _check_rate(args)
    import io

    from gencodec.image_checks import check_image_file

    # The header and the file's structure first, then the output, then the whole image: each check costs more
    # than the one before (numpy is imported for the last), and all of them less than loading the model
    # (gencodec.image_reading needs no torch).
    if args.input == STDIO:
        encoded = sys.stdin.buffer.read()
        check_image_file(io.BytesIO(encoded), args.max_pixels)
        common.check_output(args.output, args.force)
        from gencodec.image_reading import decode_bytes

        pixels = decode_bytes(encoded, "<stdin>", args.max_pixels)
        del encoded
    else:
        common.check_input(args.input)
        check_image_file(args.input, args.max_pixels)
        common.check_output(args.output, args.force)
        from gencodec.image_reading import load_image

        pixels = load_image(args.input, args.max_pixels)

    codec = common.load_codec(args)  # compresses the decoded pixels: the input is read once
    if args.bpp is not None or args.max_bytes is not None:
        data = codec.compress_to_target(pixels, bpp=args.bpp, max_bytes=args.max_bytes)
    else:
        data = codec.compress(pixels, level=args.level)
    del pixels
    common.write_output(args.output, data, args.force)

    info = codec.info(data)
    common.warn_if_untrained(codec, args)
    coded = f" (coded at 1/{info.downscale} size)" if info.downscale > 1 else ""
    _summary(args, f"{info.bytes} bytes, {info.bpp:.4f} bpp, level {info.level}, {info.width}x{info.height}{coded}")
    return EXIT_OK


def _register_compress(subparsers) -> None:
    p = common.add_command(subparsers, "compress", cmd_compress, help=f"compress an image into a {SUFFIX} file",
                           description=COMPRESS_DESCRIPTION, epilog=COMPRESS_EPILOG)
    p.add_argument("input", metavar="IN", nargs="+",
                   help="image to compress, or '-' to read it from stdin; or several images, folders, globs "
                        "and @list.txt files with --out-dir")
    p.add_argument("-o", "--output", metavar="OUT",
                   help=f"the {SUFFIX} file to write, or '-' for stdout; default: IN with its suffix replaced "
                        f"by {SUFFIX} (required when IN is '-')")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--level", "-l", metavar="L", type=int, default=None,
                      help="rate level, 0 (smallest file) .. N-1 (most detail); default: the model's middle "
                           "level, N // 2")
    rate.add_argument("--bpp", metavar="X", type=float, default=None,
                      help="target bits per pixel: search the levels for the highest one whose file is at "
                           "most X bpp; fails if even level 0 is larger")
    rate.add_argument("--max-bytes", metavar="N", type=int, default=None,
                      help="target file size: search the levels for the highest one whose file is at most "
                           "N bytes; fails if even level 0 is larger")
    p.add_argument("--search-steps", metavar="N", type=common.search_steps, default=None,
                   help="the encoder search's gradient steps per picture (0: none, the fastest encoder; more: "
                        "slower, usually smaller files); default: the model's, by picture size (2 at "
                        "768x512, 8 at 384x256); models without search settings do not search")
    common.add_force(p)
    common.add_pixel_budget(p)
    common.add_model_options(p)
    _add_batch_options(p)


# -- decompress -------------------------------------------------------------------------------

def _image_format(name: str) -> str:
    """The Pillow format to write for an output name ('-' is PNG); GencodecError if Pillow cannot write it."""
    if name == STDIO:
        return "PNG"
    from PIL import Image

    suffix = Path(name).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        what = f"suffix '{suffix}'" if suffix else "no suffix"
        raise GencodecError(
            f"cannot write image {common.label(name)}: {what} is not an image format gencodec can write "
            "(use .png, .jpg, .webp, ...)")
    return fmt


def cmd_decompress(args: argparse.Namespace) -> int:
    if _batch_or_single(args):
        from gencodec.cli import batch

        return batch.run_batch(args)
    from gencodec import bitstream
    from gencodec.image_checks import check_pixel_budget

    if args.output is None:
        args.output = _default_output(args, ".png", "an image path")
    fmt = _image_format(args.output)
    common.check_output(args.output, args.force)
    data = common.read_input(args.input)
    header = bitstream.peek_header(data)  # a damaged or foreign file fails here, before a model is loaded
    check_pixel_budget(header.height, header.width, args.max_pixels, what="the file's image")

    codec = common.load_codec(args)
    image = codec.decompress(data, realism=args.realism, steps=args.steps, seed=args.seed,
                             scheduler=args.scheduler)
    common.write_output(args.output, common.encode_image(image, fmt), args.force)

    common.warn_if_untrained(codec, args)
    _summary(args, f"{image.width}x{image.height}, level {header.level}, {fmt}")
    return EXIT_OK


def _register_decompress(subparsers) -> None:
    p = common.add_command(subparsers, "decompress", cmd_decompress,
                           help=f"decompress a {SUFFIX} file into an image",
                           description=DECOMPRESS_DESCRIPTION, epilog=DECOMPRESS_EPILOG)
    p.add_argument("input", metavar="IN", nargs="+",
                   help=f"the {SUFFIX} file, or '-' to read it from stdin; or several files, folders, globs and "
                        "@list.txt files with --out-dir (PNG outputs)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="image to write, format from its suffix (.png, .jpg, .webp, ...), or '-' for PNG "
                        "on stdout; default: IN with its suffix replaced by .png (required when IN is '-')")
    p.add_argument("--realism", type=float, default=None, metavar="R",
                   help="0 (distortion-optimal) .. 1 (fully generative); default: 1 when the model has a "
                        "generative decoder, else 0")
    p.add_argument("--steps", type=int, default=None,
                   help="denoising steps of the generative decoder; default: the model's")
    p.add_argument("--seed", type=int, default=0, help="sampling seed; default: %(default)s")
    p.add_argument("--scheduler", default=None, choices=SCHEDULERS,
                   help="diffusers sampler; default: the model's")
    common.add_force(p)
    common.add_pixel_budget(p)
    common.add_model_options(p)
    _add_batch_options(p)


# -- info -------------------------------------------------------------------------------------

def _model_verdict(args: argparse.Namespace, fingerprint: int):
    """Whether the model named by --model wrote a file with this fingerprint: (the words, whether it did,
    the codec)."""
    codec = common.load_codec(args)
    matches = codec.fingerprint16 == fingerprint
    if matches:
        verdict = "matches: this model decodes the file"
    else:
        verdict = (f"does NOT match (model fingerprint {codec.fingerprint16:04x}): "
                   "the file was encoded with another model")
    common.warn_if_untrained(codec, args)
    return f"'{args.model}' {verdict}", matches, codec


def cmd_info(args: argparse.Namespace) -> int:
    from gencodec import bitstream

    data = common.read_input(args.input)
    header = bitstream.peek_header(data)
    rows = [
        ("file", common.stdio_name(args.input, "<stdin>")),
        ("bytes", str(len(data))),
        ("bpp", f"{8 * len(data) / (header.width * header.height):.4f}"),
        ("level", str(header.level)),
        ("size", f"{header.width}x{header.height}"),
        ("version", str(header.version)),
        ("fingerprint", f"{header.fingerprint:04x}"),
    ]
    matches = True
    if args.model is not None:
        verdict, matches, codec = _model_verdict(args, header.fingerprint)
        rows.append(("model", verdict))
        if matches and header.level < codec.n_levels and codec.rungs[header.level].downscale > 1:
            from gencodec.rungs import coded_size
            factor = codec.rungs[header.level].downscale
            rows.append(("coded at", "1/{} size ({}x{})".format(factor, *coded_size(header.width, header.height, factor))))
    width = max(len(key) for key, _ in rows) + 2
    for key, value in rows:
        print(f"{key + ':':<{width}}{value}")
    return EXIT_OK if matches else EXIT_ERROR


def _register_info(subparsers) -> None:
    p = common.add_command(subparsers, "info", cmd_info,
                           help=f"show a {SUFFIX} file's header (no model needed)",
                           description=INFO_DESCRIPTION, epilog=INFO_EPILOG)
    p.add_argument("input", metavar="FILE", help=f"the {SUFFIX} file, or '-' to read it from stdin")
    common.add_model_options(p, None)


def register(subparsers) -> None:
    """Add compress, decompress and info to the `gencodec` parser's subparsers."""
    _register_compress(subparsers)
    _register_decompress(subparsers)
    _register_info(subparsers)
