"""Helpers that several `gencodec` commands share: messages, input and output checks, model options.

Imports nothing heavy: torch, the model and the tools load inside the
functions that need them.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Callable

from gencodec.constants import DEFAULT_MAX_PIXELS, DEFAULT_MODEL, MAX_SEARCH_STEPS, UNTRAINED
from gencodec.errors import GencodecError, ModelNotFoundError
from gencodec.extras import require_extra
from gencodec.fileio import write_atomic

PROG = "gencodec"
#: The file name that means stdin (as input) or stdout (as output).
STDIO = "-"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs keep their line breaks; option help starts at column 32."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def add_command(subparsers, name: str, handler: Handler, help: str, description: str,
                epilog: str) -> argparse.ArgumentParser:
    """A subcommand whose parsed arguments run `handler` (also given as args.subparser, for its usage errors)."""
    p = subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                              formatter_class=HelpFormatter)
    p.set_defaults(func=handler, subparser=p)
    return p


def needs_extra(extra: str, handler: Handler) -> Handler:
    """`handler`, reporting a missing third-party package as one line that names the extra to install."""
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        with require_extra(extra, f"'{PROG} {args.command}'"):
            return handler(args)
    return run


# -- messages ---------------------------------------------------------------------------------

def one_line(text: object) -> str:
    return " ".join(str(text).split())


def label(path: str | os.PathLike) -> str:
    """How a file is named in messages: quoted, and on one line even if the name has odd characters."""
    return repr(str(path))


def error(message: object) -> None:
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)


def warn(message: object) -> None:
    print(f"warning: {one_line(message)}", file=sys.stderr)


def info(message: str) -> None:
    print(message, file=sys.stderr)


def os_error_message(exc: OSError) -> str:
    """'No such file or directory: 'x.png'' rather than '[Errno 2] No such file or directory: ...'."""
    if exc.strerror:
        message = exc.strerror
        if exc.filename is not None:
            message += f": {label(exc.filename)}"
        return one_line(message)
    return one_line(exc) or type(exc).__name__


def os_error_message_short(exc: OSError) -> str:
    return one_line(exc.strerror or exc) or type(exc).__name__


def stdio_name(name: str, stdio: str) -> str:
    """`name` for a summary line, with '-' shown as `stdio` ('<stdin>' or '<stdout>')."""
    return stdio if name == STDIO else name


# -- inputs and outputs -------------------------------------------------------------------------

def check_input(name: str | os.PathLike) -> None:
    """Fail early (before loading a model) on a missing input or a folder."""
    path = Path(name)
    if not path.exists():
        raise GencodecError(f"no such file: {label(name)}")
    if path.is_dir():
        raise GencodecError(f"{label(name)} is a directory, not a file")


def read_input(name: str) -> bytes:
    """All bytes of a file, or of stdin for '-'; one-line GencodecErrors for the usual mistakes."""
    if name == STDIO:
        return sys.stdin.buffer.read()
    check_input(name)
    try:
        with open(name, "rb") as f:
            return f.read()
    except OSError as exc:
        raise GencodecError(f"cannot read {label(name)}: {os_error_message_short(exc)}") from exc


def _already_exists(name: str) -> GencodecError:
    return GencodecError(f"output {label(name)} already exists; use --force to overwrite it")


def check_output(name: str, force: bool) -> None:
    """Fail early on an output we may not (or cannot) write."""
    if name == STDIO:
        if sys.stdout.isatty() and not force:
            raise GencodecError("refusing to write binary data to a terminal; redirect stdout, or use --force")
        return
    path = Path(name)
    if path.is_dir():
        raise GencodecError(f"output {label(name)} is a directory")
    if os.path.lexists(path) and not force:
        raise _already_exists(name)
    if not path.parent.is_dir():
        raise GencodecError(f"cannot write {label(name)}: folder {label(path.parent)} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise GencodecError(f"cannot write {label(name)}: folder {label(path.parent)} is not writable")


def encode_image(image, fmt: str = "PNG") -> bytes:
    """A decoded PIL image as the bytes of an image file in Pillow's format `fmt`."""
    import io

    import numpy as np

    from gencodec.imageio import save_image

    buffer = io.BytesIO()
    save_image(np.asarray(image), buffer, format=fmt)
    return buffer.getvalue()


def write_output(name: str, data: bytes, force: bool) -> None:
    """Write `data` to stdout, or atomically to a file: a failure leaves OUT as it was."""
    if name == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        write_atomic(name, data, overwrite=force)
    except FileExistsError as exc:  # appeared since check_output
        raise _already_exists(name) from exc
    except OSError as exc:
        raise GencodecError(f"cannot write {label(name)}: {os_error_message_short(exc)}") from exc


# -- options and their parsers ------------------------------------------------------------------

def add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", "-f", action="store_true",
                   help="overwrite OUT if it exists (and allow binary output to a terminal); default: refuse")


def positive_int(text: str) -> int:
    """argparse's type= for a count that must be at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def search_steps(text: str) -> int:
    """argparse's type= for --search-steps: 0 .. MAX_SEARCH_STEPS."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value <= MAX_SEARCH_STEPS:
        raise argparse.ArgumentTypeError(f"expected 0..{MAX_SEARCH_STEPS}, got {value}")
    return value


def add_pixel_budget(p: argparse.ArgumentParser,
                     refuses: str = "an image (or a file whose header claims one) of more than N pixels, "
                                    "before the model loads") -> None:
    """--max-pixels; `refuses` says what it refuses, and when."""
    p.add_argument("--max-pixels", metavar="N", type=positive_int, default=DEFAULT_MAX_PIXELS,
                   help=f"the pixel budget: refuse {refuses}; default: %(default)s (8192x8192)")


def add_model_options(p: argparse.ArgumentParser, model_default: str | None = DEFAULT_MODEL) -> None:
    """--model and --device; with `model_default` None, --model is optional and loads nothing by default."""
    if model_default is None:
        model_help = (f"also check the file against this model (a model folder, a shipped model's name, "
                      f"or '{UNTRAINED}'); default: none, only the header is read")
    else:
        model_help = (f"model folder, shipped model's name, or '{UNTRAINED}' (random weights, for trying "
                      f"the pipeline); default: '{model_default}'")
    p.add_argument("--model", "-m", metavar="M", default=model_default, help=model_help)
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="where the model runs; default: cuda if available, else cpu")


def _parse_list(text: str, convert, what: str) -> list:
    try:
        return [convert(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def parse_ints(text: str) -> list[int]:
    """'0,2,7' -> [0, 2, 7], for argparse's type=."""
    return _parse_list(text, int, "comma-separated integers")


def parse_floats(text: str) -> list[float]:
    """'0,0.5,1' -> [0.0, 0.5, 1.0], for argparse's type=."""
    return _parse_list(text, float, "comma-separated numbers")


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'768x512,1536x1024' -> [(768, 512), (1536, 1024)], for argparse's type=."""
    return _parse_list(text, _size, "sizes like 768x512,1536x1024")


# -- the model --------------------------------------------------------------------------------

def load_codec(args: argparse.Namespace):
    """Load the model named by --model on --device (imports torch)."""
    import torch

    import gencodec

    if args.device == "cuda" and not torch.cuda.is_available():
        raise GencodecError("--device cuda: CUDA is not available on this machine; use --device cpu")
    try:
        return gencodec.load(args.model, device=args.device, **(
            {"max_pixels": args.max_pixels} if hasattr(args, "max_pixels") else {}),
            search_steps=getattr(args, "search_steps", None))
    except ModelNotFoundError as exc:
        if args.model == DEFAULT_MODEL:
            raise ModelNotFoundError(f"{one_line(exc)} (choose one with --model)") from exc
        raise


def warn_if_untrained(codec, args: argparse.Namespace) -> None:
    """Called once the work has succeeded, so that on failure the error is the only line on stderr."""
    if not codec.is_trained:
        warn(f"model '{args.model}' is untrained: files round-trip, but pictures are not meaningful")
