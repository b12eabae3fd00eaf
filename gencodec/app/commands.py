"""`gencodec app`: serve a local web page to try the codec on a photo.

Needs the `gencodec[app]` extra (Gradio); a missing package is reported as
one line that names it. Registration imports nothing heavy: Gradio, torch and
the model load when the command runs.
"""

from __future__ import annotations

import argparse
import errno
import socket
from pathlib import Path

from gencodec.app import LOOPBACK, LOOPBACK_HOSTS
from gencodec.cli import common
from gencodec.cli.common import EXIT_OK, GencodecError

EXTRA = "app"
DEFAULT_HOST = LOOPBACK  # this machine only
DEFAULT_PORT = 7860

APP_DESCRIPTION = """\
Serve a web page, on this machine, to try gencodec on a photo: upload one (or
pick a sample photo), choose a byte budget or a level, a realism and a seed,
and see gencodec's reconstruction next to the best classical file (JPEG, WebP,
AVIF or HEVC, each searched over quality and downscaling) at or under the same
number of bytes, with both files' real sizes in bytes and bits per pixel. The
.gcz file can be downloaded, and decoded later with 'gencodec decompress' and
the same model.

It stays local: the page listens on the loopback interface (127.0.0.1) unless
--host says otherwise, there is no public share link, Gradio's analytics are
off and the page loads no web fonts or scripts from other hosts. Nothing is
sent anywhere. Ctrl+C stops it."""

APP_EPILOG = """\
example:
  gencodec app                          # then open http://127.0.0.1:7860
  gencodec app --port 8000 --model untrained --device cpu
  gencodec app --max-pixels 4000000     # refuse photos above 4 megapixels

The byte budget picks the model's highest level whose file fits; the classical
codecs then get the size of that file, not the budget, so both sides are
compared at the same bytes. The sample photos ship with scikit-image."""


def _check_port_free(host: str, port: int) -> None:
    """Fail at once, before the model loads, when host:port cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise GencodecError(f"--host {host!r} is not an address of this machine: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise GencodecError(f"port {port} on {host} is in use; choose another with --port") from exc
            raise GencodecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def sample_photos() -> list[Path]:
    """The sample photos the page offers: scikit-image's, or none when scikit-image is not installed."""
    from gencodec.evaluation.demo import sample_photos as skimage_photos

    try:
        return skimage_photos()
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "skimage":
            return []
        raise


def cmd_app(args: argparse.Namespace) -> int:
    import shutil
    import tempfile
    import time

    from gencodec.app import ui  # Gradio: a missing extra is reported here, before the model loads

    _check_port_free(args.host, args.port)
    codec = common.load_codec(args)
    out_dir = Path(tempfile.mkdtemp(prefix="gencodec-app-"))
    try:
        with ui.running(codec, out_dir, sample_photos(), args.host, args.port, model_name=args.model) as (page, url):
            if args.host not in LOOPBACK_HOSTS:
                common.warn(f"listening on {args.host}, not only on this machine's loopback interface: "
                            "anyone who can reach this machine can use the app")
            common.warn_if_untrained(codec, args)
            common.info(f"gencodec app: open {url} in a browser (model '{args.model}'); Ctrl+C stops it")
            while page.is_running:
                time.sleep(0.5)
    except KeyboardInterrupt:
        common.info("stopped")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return EXIT_OK


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {value}")
    return value


def register(subparsers) -> None:
    """Add `app` to the `gencodec` parser's subparsers."""
    p = common.add_command(subparsers, "app", common.needs_extra(EXTRA, cmd_app),
                           help="a local web page to try the codec on a photo, beside classical codecs",
                           description=APP_DESCRIPTION, epilog=APP_EPILOG)
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="the address to listen on; default: %(default)s (this machine only). 0.0.0.0 lets "
                        "other machines in")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help="the port to listen on; default: %(default)s")
    common.add_pixel_budget(p, "an uploaded photo of more than N pixels, from its header, before its pixels "
                               "are decoded")
    common.add_model_options(p)
