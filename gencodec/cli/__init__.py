"""The ``gencodec`` command line, assembled from the commands of gencodec's parts.

    gencodec compress photo.png -o photo.gcz --level 2
    gencodec info photo.gcz
    gencodec decompress photo.gcz -o photo_decoded.png

Each module named in COMMAND_MODULES adds its commands with ``register(subparsers)``:
the runtime's (compress, decompress, info), the evaluation tools' (demo, bench,
eval, report), the training tools' (pack, cache-latents) and the web app's
(app). Registration imports nothing heavy, and a runtime command builds only
the runtime's parsers, so it never imports gencodec.training,
gencodec.evaluation or gencodec.app.

Every error gencodec raises on purpose (a :class:`~gencodec.errors.GencodecError`)
and every :class:`OSError` from reading or writing files is printed as one line,
``gencodec: error: <message>``, with exit status 1. Command-line mistakes exit
with status 2 (argparse), an interrupt with 130. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from gencodec.cli import common
from gencodec.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG, GencodecError

#: The modules whose register(subparsers) adds commands, in --help order; the runtime's first.
COMMAND_MODULES = [
    "gencodec.cli.codec_commands",
    "gencodec.evaluation.commands",
    "gencodec.training.commands",
    "gencodec.app.commands",
]

DESCRIPTION = """\
Generative image compression at extreme low bitrates.

Compress an image into a .gcz file, and decompress the .gcz file back into an
image with the same model.

levels:
  Every model has a fixed number of rate levels, 0..N-1 (N = 7 for the default
  model, 'pixel'; 8 for 'latent'). Level 0 gives the smallest file and the
  roughest picture; each higher level spends more bits on detail. The default
  is the middle level, N // 2. On the Kodak photos the default model spans
  about 0.002 bpp (120 bytes for 768x512) at level 0 to 0.07 bpp (3.4 KB)
  at level 6; gencodec/weights/pixel/ladder.json has every level's range.
  Its five lowest levels code the photo made 4 or 2 times smaller and bring
  it back to full size (its model card says why).

the .gcz file:
  An 8-byte header (magic byte, format version, level, 16-bit model
  fingerprint, width and height), the entropy-coded latent, and a CRC-16
  checksum. Only the model that wrote a file can decode it: its fingerprint is
  checked, and a file from another model is refused. 'gencodec info' reads the
  header without loading a model.

models:
  --model takes a model folder (config.json + weights), the name of a shipped
  model, or 'untrained' (random weights: files round-trip, but pictures are
  noise; for trying the pipeline). The default is 'pixel' (also called
  'default'), the shipped model that keeps the scene: at about 0.005 and
  0.02 bpp its pictures keep as much of the photo as the best classical file
  of the same size. 'latent', the other shipped model, scores better in LPIPS
  from 0.02 bpp up but keeps far less of the photo (model cards in
  gencodec/weights/).
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


def _command(argv: list[str]) -> str | None:
    """The command named in `argv`: the first word that is not an option (the top level takes no values).

    None when there is none, or when top-level help comes first (it lists every command).
    """
    for arg in argv:
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `gencodec` parser: every command, or only the runtime's when `command` is one of them."""
    from gencodec import __version__

    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=common.HelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    runtime, *tools = COMMAND_MODULES
    importlib.import_module(runtime).register(subparsers)
    if command not in subparsers.choices:
        for name in tools:
            importlib.import_module(name).register(subparsers)
    return parser


def _exit_status(exc: SystemExit, none: int) -> int:
    """The status of argparse's exit (--help, --version, usage errors); `none` for a bare exit."""
    if isinstance(exc.code, int):
        return exc.code
    return none if exc.code is None else EXIT_USAGE


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so that Python does not complain again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _run(args: argparse.Namespace) -> int:
    """Run the command; errors become one line on stderr and exit status 1."""
    try:
        return args.func(args)
    except SystemExit as exc:  # parser.error() inside a command
        return _exit_status(exc, EXIT_USAGE)
    except GencodecError as exc:
        common.error(exc)
    except BrokenPipeError:  # the reader went away (e.g. '| head')
        _quiet_stdout()
        common.error("cannot write to stdout: broken pipe")
    except OSError as exc:
        common.error(common.os_error_message(exc))
    return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (argparse's --help / usage exits included)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(_command(argv))
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, usage errors
            return _exit_status(exc, EXIT_OK)
        return _run(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
