"""The page of `gencodec app` (Gradio), and serving it.

The page never makes the browser or the server reach past this machine:
Gradio's analytics and version check are off, there is no share link, no
server-side rendering process, and the theme uses the system's fonts instead
of loading web fonts. The work itself is gencodec.app.session.compare.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import gradio as gr

from gencodec.app import LOOPBACK
from gencodec.app.session import Comparison, Settings, compare
from gencodec.codec import Codec
from gencodec.errors import GencodecError

# Gradio reads this whenever it might send analytics (not all of its calls ask the Blocks); huggingface_hub,
# which Gradio imports, has telemetry of its own.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

TITLE = "gencodec"
BY_BYTES, BY_LEVEL = "byte budget", "level"
DEFAULT_MAX_BYTES = 1000
#: No "share" button: it is for publishing to Hugging Face Spaces.
IMAGE_BUTTONS = ["download", "fullscreen"]
#: Gradio's result files (its cache) older than an hour are deleted, checked every hour.
CACHE_LIFETIME = (3600, 3600)

INTRO = """\
# gencodec: a photo in a few hundred bytes
Upload a photo (or pick a sample), choose a byte budget or a level, and compare
gencodec's file with the best classical file (JPEG, WebP, AVIF or HEVC, each
searched over quality and downscaling) at or under the same number of bytes.
Everything runs on this machine; nothing is sent anywhere."""


def local_theme() -> gr.themes.Theme:
    """Gradio's default look with the system's fonts: nothing to fetch from a font host."""
    return gr.themes.Default(font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
                             font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


def settings_from_form(rate_by: str, max_bytes, level, realism, seed) -> Settings:
    """The form's values (Gradio numbers may arrive as floats, or None when a field is emptied) as Settings."""
    if seed is not None and seed < 0:
        raise GencodecError("the seed must be 0 or more")
    seed = int(seed or 0)
    if rate_by == BY_BYTES:
        if max_bytes is None or max_bytes < 1:
            raise GencodecError("the byte budget must be a positive whole number of bytes")
        return Settings(max_bytes=int(max_bytes), realism=float(realism), seed=seed)
    return Settings(level=int(level), realism=float(realism), seed=seed)


def _outputs(comparison: Comparison | None, status: str) -> tuple:
    """The values of the result components, in the order `build` lists them."""
    if comparison is None:
        return (gr.Image(value=None, label="original"), gr.Image(value=None, label="gencodec"),
                gr.Image(value=None, label="best classical file"), "", None, None, status)
    c = comparison
    classical = c.classical
    return (gr.Image(value=c.original, label=f"original: {c.width}x{c.height}"),
            gr.Image(value=c.ours.decoded, label=c.caption(c.ours)),
            gr.Image(value=classical.decoded if classical else None,
                     label=c.caption(classical) if classical else "no classical file fits"),
            c.summary(), str(c.ours.path), str(classical.path) if classical else None, status)


def build(codec: Codec, out_dir: str | Path, samples: Sequence[Path] = (), model_name: str = "") -> gr.Blocks:
    """The page, working with `codec`; result files go into `out_dir`; `samples` are offered as examples."""

    def run(photo, rate_by, max_bytes, level, realism, seed):
        try:
            settings = settings_from_form(rate_by, max_bytes, level, realism, seed)
            return _outputs(compare(codec, photo, settings, out_dir), "")
        except GencodecError as exc:
            return _outputs(None, f"**Cannot compress this:** {' '.join(str(exc).split())}")
        except OSError as exc:
            return _outputs(None, f"**Cannot write the results:** {exc.strerror or exc}")

    generative = codec.is_generative
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=CACHE_LIFETIME) as page:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.File(label="photo (PNG, JPEG, WebP, ...)", type="filepath", elem_id="photo")
                if samples:
                    gr.Examples([[str(p)] for p in samples], inputs=[photo], label="sample photos",
                                example_labels=[p.stem for p in samples])
            with gr.Column(scale=1):
                rate_by = gr.Radio([BY_BYTES, BY_LEVEL], value=BY_BYTES, label="choose the rate by",
                                   elem_id="rate-by")
                max_bytes = gr.Number(DEFAULT_MAX_BYTES, precision=0, minimum=1, label="byte budget",
                                      info="gencodec's highest level whose file fits", elem_id="max-bytes")
                level = gr.Slider(0, codec.n_levels - 1, value=codec.default_level, step=1, label="level",
                                  info="0 is the smallest file", visible=False, elem_id="level")
                realism = gr.Slider(0, 1, value=1.0 if generative else 0.0, step=0.05, label="realism",
                                    interactive=generative,
                                    info=("0: the sharpest faithful guess; 1: generated detail" if generative
                                          else "this model has no generative decoder"))
                seed = gr.Number(0, precision=0, minimum=0, label="seed", info="sampling seed of the decoder")
                button = gr.Button("Compress", variant="primary", elem_id="compress")
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            # PNG: Gradio's default (WebP) would add its own losses to the images being compared.
            original, ours, classical = (
                gr.Image(label=label, format="png", interactive=False, buttons=IMAGE_BUTTONS, elem_id=elem_id)
                for label, elem_id in (("original", "original"), ("gencodec", "ours"),
                                       ("best classical file", "classical")))
        summary = gr.Markdown(elem_id="summary")
        with gr.Row():
            gcz = gr.File(label="gencodec file (.gcz)", interactive=False, elem_id="gcz-file")
            classical_file = gr.File(label="classical file", interactive=False, elem_id="classical-file")
        if model_name:
            gr.Markdown(f"Model: `{model_name}`, {codec.n_levels} levels, on {codec.device}.")

        rate_by.change(lambda by: (gr.Number(visible=by == BY_BYTES), gr.Slider(visible=by == BY_LEVEL)),
                       inputs=rate_by, outputs=[max_bytes, level], queue=False)
        button.click(run, inputs=[photo, rate_by, max_bytes, level, realism, seed],
                     outputs=[original, ours, classical, summary, gcz, classical_file, status],
                     concurrency_limit=1)  # one photo at a time: the model already uses every core
    return page


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on at `host` right now (the system's choice)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running(codec: Codec, out_dir: str | Path, samples: Sequence[Path] = (), host: str = LOOPBACK,
            port: int | None = None, model_name: str = "") -> Iterator[tuple[gr.Blocks, str]]:
    """The page, served in the background at host:port (port None: a free one) while the block runs: yields
    (the page, its URL), and stops the server afterwards. Result files go into `out_dir`."""
    page = build(codec, out_dir, samples, model_name)
    # The only files the page may hand out besides uploads: its results and the sample photos.
    allowed = [str(out_dir), *sorted({str(p.parent) for p in samples})]
    page.launch(server_name=host, server_port=port or free_port(host), share=False, inbrowser=False, quiet=True,
                prevent_thread_lock=True, ssr_mode=False, mcp_server=False, pwa=False, show_error=False,
                allowed_paths=allowed, theme=local_theme())
    try:
        yield page, page.local_url
    finally:
        page.close()
