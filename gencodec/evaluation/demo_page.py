"""The demo's page: index.html and its rate-quality plot, from the records of a finished run
(gencodec.evaluation.demo_records; it never imports the run itself).

The page opens from disk with no network: no scripts, fonts or styles from
elsewhere, and every image is a relative path in the demo folder. For each
photo it has a grid, one row per level: the original, our decodes at each
realism, and the best classical file at or under our bytes, each with the
same window of the photo enlarged underneath.
"""

from __future__ import annotations

import html
from pathlib import Path

from .demo_records import CROP_SIDE, CROP_ZOOM, Demo, DemoPhoto, DemoRow, Shown
from .report import METRICS, plot_rate_quality, relative_url

PAGE = "index.html"
#: The series name of the best classical file in the plot.
CLASSICAL = "best classical"
#: Width of an image on the page, in CSS pixels (the crops come out at about this size too).
TILE = 256

_STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em 2em;color:#222}"
    "p.lead{max-width:62em;line-height:1.45}p.small{font-size:13px;color:#555;max-width:62em}"
    "h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:4px}"
    "table.grid{border-collapse:collapse}"
    ".grid th{font-weight:600;font-size:14px;text-align:left;padding:4px 8px;vertical-align:top;white-space:nowrap}"
    ".grid td{vertical-align:top;padding:6px 8px}"
    f"figure{{margin:0;width:{TILE}px}}a.image{{display:block}}"
    f".full{{display:block;width:{TILE}px;height:auto}}"
    ".crop{display:block;margin-top:6px;image-rendering:pixelated;max-width:100%}"
    "figcaption{font-size:12px;line-height:1.4;margin-top:4px}"
    ".frame{position:relative}"
    ".window{position:absolute;border:2px solid #ffd400;box-shadow:0 0 0 1px #000;box-sizing:border-box}"
    f".none{{width:{TILE}px;height:{TILE * 2 // 3}px;background:#f2f2f2;color:#666;font-size:13px;"
    "display:flex;align-items:center;justify-content:center;text-align:center;padding:0 1em;box-sizing:border-box}"
    ".plot{max-width:640px;width:100%}"
)


def _realism_name(realism: float) -> str:
    kind = {0.0: " (distortion-optimal)", 1.0: " (generative)"}.get(realism, "")
    return f"ours, realism {realism:g}{kind}"


def _quality(demo: Demo, shown: Shown) -> str:
    """The caption's measures: fidelity (PSNR, thumb-PSNR, colour bias) beside LPIPS when it was measured."""
    parts = [f"PSNR {shown.psnr:.1f} dB"]
    if shown.thumb_psnr is not None:
        parts.append(f"thumb {shown.thumb_psnr:.1f} dB")
    if demo.lpips and shown.lpips is not None:
        parts.append(f"LPIPS {shown.lpips:.3f}")
    text = " &middot; ".join(parts)
    if shown.colour_bias is not None:
        text += "<br>colour bias R/G/B " + "/".join(f"{v:+.0f}" for v in shown.colour_bias)
    return text


def _tile(demo: Demo, shown: Shown, title: str, extra: str = "") -> str:
    caption = (f"<b>{html.escape(title)}</b><br><a href='{relative_url(shown.coded_file)}'>{shown.bytes} bytes</a>"
               f" &middot; {shown.bpp:.4f} bpp &middot; {_quality(demo, shown)}")
    if extra:
        caption += f"<br>{html.escape(extra)}"
    return (f"<figure><a class='image' href='{relative_url(shown.file)}'><img class='full' src='{relative_url(shown.file)}' alt=''></a>"
            f"<img class='crop' src='{relative_url(shown.crop)}' alt='crop'>"
            f"<figcaption>{caption}</figcaption></figure>")


def _original_tile(photo: DemoPhoto) -> str:
    left, top, right, bottom = photo.box
    # The window is framed on the original so the crops below can be placed in the photo.
    window = (f"left:{100 * left / photo.width:.3f}%;top:{100 * top / photo.height:.3f}%;"
              f"width:{100 * (right - left) / photo.width:.3f}%;height:{100 * (bottom - top) / photo.height:.3f}%")
    return (f"<figure><a class='image frame' href='{relative_url(photo.file)}'>"
            f"<img class='full' src='{relative_url(photo.file)}' alt=''><span class='window' style='{window}'></span></a>"
            f"<img class='crop' src='{relative_url(photo.crop)}' alt='crop'>"
            f"<figcaption><b>original</b><br>{photo.width}&times;{photo.height} px</figcaption></figure>")


def _classical_tile(demo: Demo, row: DemoRow) -> str:
    found = row.classical
    if found is None:
        return (f"<div class='none'>no classical file fits in {row.bytes} bytes<br>"
                f"(tried {html.escape(', '.join(demo.baselines))})</div>")
    return _tile(demo, found, f"{found.codec} (best at or under {row.bytes} bytes)", found.settings)


def _photo_grid(demo: Demo, photo: DemoPhoto) -> str:
    heads = ["original"] + [_realism_name(r) for r in demo.realisms]
    if demo.baselines:
        heads.append("best classical file, at or under our bytes")
    parts = [f"<h2>{html.escape(photo.name)}</h2><table class='grid'><thead><tr><th></th>"
             + "".join(f"<th>{html.escape(h)}</th>" for h in heads) + "</tr></thead><tbody>"]
    for row in (r for r in demo.rows if r.photo == photo.name):
        cells = [_original_tile(photo)]
        cells += [_tile(demo, row.ours[r], _realism_name(r)) for r in demo.realisms]
        if demo.baselines:
            cells.append(_classical_tile(demo, row))
        parts.append(f"<tr><th>level {row.level}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


# -- the plot ---------------------------------------------------------------------------------

def _levels_without_classical(demo: Demo) -> list[int]:
    return sorted({row.level for row in demo.rows if row.classical is None}) if demo.baselines else []


def plot_results(demo: Demo) -> dict:
    """The demo's measurements as eval results, for `report.plot_rate_quality` to average per level.

    The classical series is left out at a level where some photo had no
    classical file: a mean over only the photos that fit would not compare
    with ours, a mean over all of them.
    """
    records = [{"codec": "gencodec", "image": row.photo, "level": row.level, "realism": realism,
                "bytes": shown.bytes, "bpp": shown.bpp, "psnr": shown.psnr, "lpips": shown.lpips}
               for row in demo.rows for realism, shown in row.ours.items()]
    missing = _levels_without_classical(demo)
    records += [{"codec": CLASSICAL, "image": row.photo, "level": row.level, "realism": None,
                 "bytes": row.classical.bytes, "bpp": row.classical.bpp, "psnr": row.classical.psnr,
                 "lpips": row.classical.lpips}
                for row in demo.rows if row.classical is not None and row.level not in missing]
    return {"model": {"name": demo.model_name}, "originals": {p.name: p.file for p in demo.photos},
            "settings": {"baselines": [CLASSICAL]}, "records": records}


def _plot_section(out: Path, demo: Demo) -> str:
    written = plot_rate_quality(plot_results(demo), out)
    names = {path.name for path in written}
    metric = "lpips" if demo.lpips and "rd_lpips.png" in names else "psnr"
    if f"rd_{metric}.png" not in names:
        return ""
    others = [f"<a href='{relative_url(n)}'>{html.escape(n)}</a>" for n in sorted(names) if n != f"rd_{metric}.png"]
    note = (f"Mean over the {len(demo.photos)} photo{'s' * (len(demo.photos) != 1)} at each level "
            f"(x: bits per pixel, log scale; y: {METRICS[metric][0]}, "
            f"{'higher' if METRICS[metric][1] else 'lower'} is better), from the files shown below.")
    if demo.baselines:
        note += (f" '{CLASSICAL}' is, for each photo, the best of {', '.join(demo.baselines)} at or under "
                 "our file's bytes, so its points lie at or left of ours.")
        missing = _levels_without_classical(demo)
        if missing:
            note += (f" No classical point at level{'s' * (len(missing) > 1)} {', '.join(map(str, missing))}: "
                     "no classical file fits our bytes there for at least one photo.")
    return (f"<h2>Rate and quality</h2><img class='plot' src='{relative_url(f'rd_{metric}.png')}' alt='rate-quality plot'>"
            f"<p class='small'>{html.escape(note)} Also: {', '.join(others)}.</p>")


# -- the page ---------------------------------------------------------------------------------

def _lead(demo: Demo) -> str:
    realisms = " and ".join(f"{r:g}" for r in demo.realisms)
    text = (f"Each photo compressed by gencodec at levels {', '.join(map(str, demo.levels))}, "
            f"and our file decoded at realism {realisms}")
    if demo.realisms == [0.0]:
        text += " (this model has no generative decoder, so realism 0 is all there is)"
    elif 0.0 in demo.realisms and 1.0 in demo.realisms:
        text += (": realism 0 is the distortion-optimal reconstruction, realism 1 the generative decoder's, "
                 "which draws plausible texture instead of blurring it")
    text += ". "
    if demo.baselines:
        rank = "LPIPS" if demo.lpips else "PSNR"
        text += (f"Beside it, the best classical file at or under the same bytes: {', '.join(demo.baselines)} "
                 "were each searched over quality and a downscale factor (the image shrunk before coding "
                 f"and enlarged after decoding), and the best file by {rank} is shown, named. ")
    text += (f"Under each image, the same {CROP_SIDE}-pixel window of the photo (the most detailed one, framed "
             f"on the original) at {CROP_ZOOM}&times; zoom, nearest neighbour. Bytes are whole files, ours with "
             "its header" + (", classical ones with their format headers and no metadata" if demo.baselines else "")
             + "; bpp is bits per pixel of the original. ")
    text += ("PSNR: higher is closer to the original. Thumb: the PSNR of both images shrunk 8 times (area "
             "average), which sees layout and colour and is blind to texture; colour bias: the mean of the decoded "
             "image minus the original's per channel, in levels. ")
    if demo.baselines:
        text += "A classical file often keeps the scene better by these, while ours draws sharper texture. "
    text += ("LPIPS (AlexNet): lower is closer to the original; it punishes blur far more than wrong colours or "
             "invented texture, so read it beside the fidelity measures." if demo.lpips
             else "LPIPS with --lpips-weights judges texture too.")
    return text


def write_page(out: Path, demo: Demo) -> Path:
    """out/index.html (and out/rd_*.png, .svg): the plot, then a grid per photo."""
    steps = f"{demo.trained_steps} training steps" if demo.trained_steps else "untrained: pictures are not meaningful"
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'>",
        f"<title>gencodec demo: {html.escape(demo.model_name)}</title>",
        f"<style>{_STYLE}</style>",
        f"<h1>gencodec demo: model {html.escape(demo.model_name)}</h1>",
        (f"<p class='small'>model '{html.escape(demo.model_name)}' ({html.escape(steps)}); "
         f"{len(demo.photos)} photo{'s' * (len(demo.photos) != 1)}; levels {', '.join(map(str, demo.levels))}</p>"),
        f"<p class='lead'>{_lead(demo)}</p>",
        _plot_section(out, demo),
    ]
    parts += [_photo_grid(demo, photo) for photo in demo.photos]
    path = out / PAGE
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
