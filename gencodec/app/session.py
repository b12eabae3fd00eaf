"""The work behind `gencodec app`, with no web framework: one photo in, two files of the same size out.

    comparison = compare(codec, "photo.png", Settings(max_bytes=1000), out_dir)
    comparison.ours.path         # the .gcz file, comparison.ours.n_bytes its size
    comparison.ours.decoded      # what it decodes to, at the settings' realism and seed
    comparison.classical         # the best classical file at or under our file's size, or None
    comparison.summary()         # what the page shows, in Markdown

Every mistake a visitor can make (no photo, a file that is not an image, a
truncated or empty one, one over the pixel budget, a byte budget that even the
smallest level cannot meet) raises a GencodecError with a one-line message
that names the file as it was uploaded.
"""

from __future__ import annotations

import io
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gencodec.codec import Codec
from gencodec.errors import GencodecError, InvalidImageError
from gencodec.evaluation.baselines import COMPARED, DISPLAY_NAMES, FILE_SUFFIXES, available_codecs, best_of
from gencodec.imageio import load_image

OURS = "gencodec"


@dataclass(frozen=True)
class Settings:
    """What the visitor chose: a rate (a byte budget, else a level, else the model's middle level), and how to
    decode (realism in [0, 1], None for the model's default; the sampling seed)."""

    level: int | None = None
    max_bytes: int | None = None
    realism: float | None = None
    seed: int = 0


@dataclass
class CodedFile:
    """One file of the photo, as written to disk, and the image it decodes to."""

    codec: str      # the codec's name, as shown
    detail: str     # how it was coded: "level 3", "quality 20, shrunk to 25% before coding"
    path: Path
    n_bytes: int    # the file's size on disk
    decoded: np.ndarray

    def bpp(self, width: int, height: int) -> float:
        return 8 * self.n_bytes / (width * height)


@dataclass
class Comparison:
    """Our file and the best classical file of the same photo at (or under) the same number of bytes."""

    name: str
    original: np.ndarray
    ours: CodedFile
    classical: CodedFile | None
    classical_tried: list[str]
    settings: Settings
    realism: float
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.original.shape[1]

    @property
    def height(self) -> int:
        return self.original.shape[0]

    def caption(self, coded: CodedFile) -> str:
        """'WebP: 1,130 bytes, 0.0230 bpp': the label of an image (the summary says how each was coded)."""
        return f"{coded.codec}: {coded.n_bytes:,} bytes, {coded.bpp(self.width, self.height):.4f} bpp"

    def no_classical_reason(self) -> str:
        names = ", ".join(DISPLAY_NAMES[c] for c in self.classical_tried) or "none available here"
        return (f"No classical file fits in {self.ours.n_bytes:,} bytes: none of the classical codecs searched "
                f"({names}) can write this photo that small, even at its lowest quality on a thumbnail.")

    def summary(self) -> str:
        """The result as Markdown: both files' real sizes, then how long each step took."""
        rows = [self.ours] + ([self.classical] if self.classical else [])
        lines = [(f"**{_markdown_text(self.name)}**, {self.width}x{self.height} pixels; "
                  f"decoded at realism {self.realism:g}, seed {self.settings.seed}."), "",
                 "| file | codec | how | bytes | bpp |", "|---|---|---|---:|---:|"]
        lines += [f"| {c.path.name} | {c.codec} | {c.detail} | {c.n_bytes:,} | "
                  f"{c.bpp(self.width, self.height):.4f} |" for c in rows]
        if self.classical is None:
            lines += ["", self.no_classical_reason()]
        steps = ", ".join(f"{what} {seconds:.1f} s" for what, seconds in self.seconds.items())
        lines += ["", f"Time: {steps}."]
        return "\n".join(lines)


def read_photo(path: str | Path, max_pixels: int | None, name: str | None = None) -> np.ndarray:
    """An uploaded file as an RGB array; a one-line InvalidImageError, naming it as `name`, when it is empty, not
    an image, damaged, or over the pixel budget (checked from its header, before its pixels are decoded)."""
    name = name or Path(path).name
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidImageError(f"cannot read {name!r}: {exc.strerror or exc}") from exc
    if not data:
        raise InvalidImageError(f"{name!r} is empty (0 bytes): choose a photo")
    stream = io.BytesIO(data)
    stream.name = name  # what load_image's messages call it
    return load_image(stream, max_pixels)


def _file_stem(name: str) -> str:
    """A safe file name stem for the outputs: the upload's, with odd characters replaced."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._")
    return stem[:64] or "photo"


def _encode(codec: Codec, image: np.ndarray, settings: Settings) -> bytes:
    if settings.max_bytes is not None:
        return codec.compress_to_target(image, max_bytes=settings.max_bytes)
    return codec.compress(image, level=settings.level)


def _classical_detail(data: bytes, quality: int, scale: float) -> str:
    """'quality 13', or 'quality 13 on a 48x32 copy, enlarged back' when the search shrank the photo first."""
    from PIL import Image

    if scale == 1:
        return f"quality {quality}"
    try:
        with Image.open(io.BytesIO(data)) as coded:  # the header only: the size the file really holds
            width, height = coded.size
    except OSError:  # a format Pillow cannot open without its plugin: say it with the scale instead
        return f"quality {quality} on a copy shrunk to {scale:.2%}, enlarged back"
    return f"quality {quality} on a {width}x{height} copy, enlarged back"


def _markdown_text(text: str) -> str:
    """`text` shown as it is in Markdown: an upload's name may hold *, _, | or brackets."""
    return re.sub(r"([\\`*_{}\[\]()#+.!|<>-])", r"\\\1", text)


def compare(codec: Codec, photo: str | Path | None, settings: Settings, out_dir: str | Path,
            name: str | None = None) -> Comparison:
    """Compress `photo` with `codec` at `settings`, decode it, and find the best classical file at or under the
    same bytes; the files go into a new folder under `out_dir`. `name` is how messages and the summary call the
    photo (default: its file name). The pixel budget is the codec's (Codec.max_pixels)."""
    if photo is None:
        raise GencodecError("no photo yet: upload one, or pick a sample")
    name = name or Path(photo).name
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    original = read_photo(photo, codec.max_pixels, name)
    seconds["reading"] = time.perf_counter() - start

    start = time.perf_counter()
    data = _encode(codec, original, settings)
    seconds["compressing"] = time.perf_counter() - start
    folder = Path(tempfile.mkdtemp(prefix="result-", dir=out_dir))  # one per request: results never clash
    stem = _file_stem(name)
    gcz = folder / f"{stem}.gcz"
    gcz.write_bytes(data)

    start = time.perf_counter()
    decoded = np.asarray(codec.decompress(data, realism=settings.realism, seed=settings.seed))
    seconds["decompressing"] = time.perf_counter() - start
    ours = CodedFile(OURS, f"level {codec.info(data).level}", gcz, gcz.stat().st_size, decoded)

    start = time.perf_counter()
    tried = [c for c in COMPARED if c in available_codecs()]
    found = best_of(original, len(data), codecs=tried) if tried else None
    seconds["classical search"] = time.perf_counter() - start
    classical = None
    if found is not None:
        path = folder / f"{stem}{FILE_SUFFIXES[found.codec]}"
        path.write_bytes(found.data)
        detail = _classical_detail(found.data, found.quality, found.scale)
        classical = CodedFile(DISPLAY_NAMES[found.codec], detail, path, path.stat().st_size, found.decoded)

    realism = settings.realism if settings.realism is not None else (1.0 if codec.is_generative else 0.0)
    return Comparison(name, original, ours, classical, tried, settings, realism, seconds)
