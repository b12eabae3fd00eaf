"""`gencodec demo`: a few photos at a few levels, beside the best classical file of the same size.

Without photos it uses sample photos that ship with scikit-image. For each
photo and level it writes our .gcz file, decodes it at each realism (0 and 1
when the model has a generative decoder), and searches the classical codecs
(gencodec.evaluation.baselines.best_of) for their best file at or under the
same bytes. It prints a table as it goes and writes everything into one
folder, with index.html (gencodec.evaluation.demo_page) to look at it. What it
measured is held in gencodec.evaluation.demo_records, which the page is
written from: records <- page <- this run, in that one direction.

    OUT/<photo>.png                       the original as RGB PNG
    OUT/<photo>_level<L>.gcz              our file
    OUT/<photo>_level<L>_r<R>.png         its decode at realism R
    OUT/<photo>_level<L>_<codec>.<ext>    the best classical file, and its decode as .png
    OUT/crops/                            the same window of each of those, enlarged
    OUT/rd_<metric>.png, .svg             rate-quality plot of the demo's own measurements
    OUT/index.html
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..codec import Codec
from ..imageio import load_image, save_image
from . import metrics
from .baselines import COMPARED, FILE_SUFFIXES
from .crops import Box, cut, most_detailed_box
from .demo_page import write_page
from .demo_records import CROP_SIDE, CROP_ZOOM, CROPS, Demo, DemoPhoto, DemoRow, Shown

SAMPLE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")


def sample_photos() -> list[Path]:
    """Photos bundled with scikit-image (no download needed)."""
    import skimage.data
    folder = Path(skimage.data.__file__).parent
    return [folder / name for name in SAMPLE_PHOTOS if (folder / name).is_file()]


def default_levels(n_levels: int) -> list[int]:
    """Three levels spread over the ladder: the lowest, the middle and the highest but one.

    The top level is left out because the demo is about the lowest rates, and
    three levels keep a run on a CPU to a few minutes.
    """
    return sorted({0, n_levels // 2, max(0, n_levels - 2)})


def check_baselines(names: list[str] | None) -> list[str]:
    """The classical codecs to search: `names` (each must be available here), or the default ones available."""
    from .baselines import available_codecs, check_codecs

    if names is None:
        return [name for name in COMPARED if name in available_codecs()]
    return check_codecs(names)


def _unique_names(photos: list[Path]) -> list[str]:
    """Photo stems, numbered where two photos share one (their files would overwrite each other)."""
    names, seen = [], {}
    for photo in photos:
        seen[photo.stem] = seen.get(photo.stem, 0) + 1
        names.append(photo.stem if seen[photo.stem] == 1 else f"{photo.stem}-{seen[photo.stem]}")
    return names


def _lpips_for(lpips_net, original: np.ndarray):
    """`lpips_net`, or None for a photo too small for it (AlexNet's strides)."""
    return lpips_net if min(original.shape[:2]) >= metrics.LPIPS_MIN_SIDE else None


class _Writer:
    """Saves a decoded image with its crop, and measures it against the original."""

    def __init__(self, out: Path, original: np.ndarray, box: Box, lpips_net):
        self.out, self.original, self.box, self.lpips_net = out, original, box, lpips_net
        self.pixels = original.shape[0] * original.shape[1]

    def save(self, decoded: np.ndarray, stem: str) -> tuple[str, str]:
        file, crop = f"{stem}.png", f"{CROPS}/{stem}.png"
        save_image(decoded, self.out / file)
        # PNG: a lossy crop would add artefacts of its own to the comparison.
        cut(Image.fromarray(decoded), self.box, CROP_ZOOM).save(self.out / crop)
        return file, crop

    def shown(self, decoded: np.ndarray, stem: str, coded_file: str, size: int, **extra) -> Shown:
        file, crop = self.save(decoded, stem)
        lpips = None if self.lpips_net is None else metrics.lpips(self.lpips_net, decoded, self.original)
        return Shown(file=file, crop=crop, coded_file=coded_file, bytes=size, bpp=8 * size / self.pixels,
                     psnr=metrics.psnr(decoded, self.original), lpips=lpips,
                     thumb_psnr=metrics.thumb_psnr(decoded, self.original),
                     colour_bias=metrics.colour_bias(decoded, self.original), **extra)


def _classical(writer: _Writer, stem: str, max_bytes: int, baselines: list[str]) -> Shown | None:
    """The best classical file at or under `max_bytes`, saved beside ours; None when none fits."""
    from .baselines import best_of
    from .evaluate import Measurer

    # Ranked as eval ranks its baselines: by LPIPS when it is measured, else by PSNR.
    score = Measurer(writer.lpips_net).selection_score(writer.original)
    found = best_of(writer.original, max_bytes, baselines, score)
    if found is None:
        return None
    coded_file = f"{stem}_{found.codec}{FILE_SUFFIXES[found.codec]}"
    (writer.out / coded_file).write_bytes(found.data)
    settings = f"quality {found.quality}" + ("" if found.scale == 1 else f", shrunk to {found.scale:.0%} to code")
    return writer.shown(found.decoded, f"{stem}_{found.codec}", coded_file, found.bytes,
                        codec=found.codec, settings=settings)


def run_demo(codec: Codec, photos: list[Path], out: Path, levels: list[int], lpips_net=None,
             realisms: Sequence[float] = (0.0, 1.0), baselines: list[str] | None = None, model_name: str = "model",
             log=print) -> Demo:
    """Every photo at every level, beside its best classical file; writes the files and index.html.

    `realisms` are narrowed to those the model has (only 0 without a generative
    decoder); `baselines` None means the default classical codecs available here,
    [] none. Prints the table through `log` as rows finish.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / CROPS).mkdir(exist_ok=True)
    demo = Demo(model_name=model_name, trained_steps=int(codec.model.config.trained_steps), levels=list(levels),
                realisms=codec.realism_values(realisms), baselines=check_baselines(baselines),
                lpips=lpips_net is not None)
    names = _unique_names(photos)
    table = _Table(demo, width=max([len(n) for n in names] + [5]) + 2)
    log(table.header())
    for photo, name in zip(photos, names):
        original = load_image(photo)
        height, width = original.shape[:2]
        box = most_detailed_box(original, CROP_SIDE)
        writer = _Writer(out, original, box, _lpips_for(lpips_net, original))
        file, crop = writer.save(original, name)
        demo.photos.append(DemoPhoto(name, file, crop, width, height, box))
        for level in levels:
            t0 = time.perf_counter()
            data = codec.compress(original, level=level)
            decoded = {realism: np.asarray(codec.decompress(data, realism=realism)) for realism in demo.realisms}
            ours_s = time.perf_counter() - t0
            stem = f"{name}_level{level}"
            (out / f"{stem}.gcz").write_bytes(data)
            ours = {realism: writer.shown(image, f"{stem}_r{realism:g}", f"{stem}.gcz", len(data))
                    for realism, image in decoded.items()}
            t0 = time.perf_counter()
            classical = _classical(writer, stem, len(data), demo.baselines) if demo.baselines else None
            row = DemoRow(name, level, len(data), 8 * len(data) / (width * height), ours, classical,
                          ours_s=ours_s, search_s=time.perf_counter() - t0)
            demo.rows.append(row)
            log(table.line(row))
    write_page(out, demo)
    return demo


class _Table:
    """The printed table: one line per photo and level, ours at each realism, then the classical winner."""

    def __init__(self, demo: Demo, width: int):
        self.demo, self.width = demo, width

    def _metrics(self) -> list[str]:
        return ["PSNR", "thumb"] + (["LPIPS"] if self.demo.lpips else [])

    def _columns(self) -> list[str]:
        columns = ["level", "bytes", "bpp"]
        columns += [f"{m} r={r:g}" for r in self.demo.realisms for m in self._metrics()] + ["ours s"]
        if self.demo.baselines:
            columns += ["classical", "bytes", *self._metrics(), "search s"]
        return columns

    def _join(self, first: str, cells: list[str]) -> str:
        widths = [max(len(c) + 2, 8) for c in self._columns()]
        return f"{first:<{self.width}}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths))

    def header(self) -> str:
        return self._join("photo", self._columns())

    def line(self, row: DemoRow) -> str:
        values = [str(row.level), str(row.bytes), f"{row.bpp:.4f}"]
        for realism in self.demo.realisms:
            values += self._measured(row.ours[realism])
        values.append(f"{row.ours_s:.1f}")
        if self.demo.baselines:
            found = row.classical
            values += [found.codec if found else "none", str(found.bytes) if found else "-"]
            values += self._measured(found) if found else ["-"] * len(self._metrics())
            values.append(f"{row.search_s:.1f}")
        return self._join(row.photo, values)

    def _measured(self, shown: Shown) -> list[str]:
        values = [f"{shown.psnr:.2f}", "-" if shown.thumb_psnr is None else f"{shown.thumb_psnr:.2f}"]
        if self.demo.lpips:
            values.append("-" if shown.lpips is None else f"{shown.lpips:.3f}")
        return values
