"""Tables, rate-quality plots and an HTML page from a `gencodec eval` folder.

    python -m gencodec.evaluation.report DIR     # prints the table, writes DIR/plots/ and DIR/report.html

Everything here reads DIR/results.json (see gencodec.evaluation.evaluate) and the PNGs it
names; nothing is measured again.
"""

from __future__ import annotations

import html
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from ..errors import GencodecError
from .fidelity import (best_classical_by_lpips, fidelity_table, format_value, geometric_mean_of, html_fidelity,
                       mean_of)

RESULTS = "results.json"
PLOTS = "plots"
CROPS = "crops"
REPORT = "report.html"
CROP_SIZE = 256

#: metric -> (axis name, higher is better, or None for a ratio to the photo's, best at 1); the order is the
#: table's and the plots'.
METRICS = {
    "psnr": ("PSNR (dB)", True),
    "thumb_psnr": ("thumb-PSNR, 1/8 area-downsampled (dB)", True),
    "abs_colour_bias": ("mean |colour bias| (8-bit levels)", False),
    "mesh": ("mesh: RMS of the period-8 error (levels)", False),
    "detail_smooth": ("detail in smooth areas (x the photo's)", None),
    "detail_busy": ("detail in busy areas (x the photo's)", None),
    "ms_ssim": ("MS-SSIM", True),
    "lpips": ("LPIPS", False),
    "dists": ("DISTS", False),
    "fid": ("FID", False),
    "kid": ("KID", False),
}
#: Per-record values averaged in the table; fid and kid come from `distribution` instead.
_MEANS = ("bytes", "bpp", "psnr", "thumb_psnr", "abs_colour_bias", "mesh", "detail_smooth", "detail_busy", "ms_ssim",
          "lpips", "dists")
#: Ratios, averaged on a log scale.
_GEOMETRIC = ("detail_smooth", "detail_busy")
#: column -> format of a value in the printed and the HTML table.
_FORMATS = {"bytes": "{:.1f}", "bpp": "{:.5f}", "psnr": "{:.2f}", "thumb_psnr": "{:.2f}", "abs_colour_bias": "{:.2f}", "mesh": "{:.2f}",
            "detail_smooth": "{:.2f}", "detail_busy": "{:.2f}", "ms_ssim": "{:.4f}", "lpips": "{:.4f}",
            "dists": "{:.4f}", "fid": "{:.2f}", "kid": "{:.4f}"}
COLUMNS = ("codec", "level", "realism", "images", "skipped") + _MEANS + ("fid", "kid")


# -- reading ----------------------------------------------------------------------------------

def load_results(dir_or_file: str | os.PathLike) -> dict:
    """The results dict of an eval folder (or of a results.json file itself)."""
    path = Path(dir_or_file)
    if path.is_dir():
        path = path / RESULTS
    if not path.is_file():
        raise GencodecError(f"no {RESULTS} at {str(path)!r} (run `gencodec eval` first)")
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GencodecError(f"cannot read {str(path)!r}: {' '.join(str(exc).split())}") from exc
    if not isinstance(results, dict) or not isinstance(results.get("records"), list):
        raise GencodecError(f"{str(path)!r} is not a gencodec eval results file (no 'records' list)")
    return results


def _realism_key(realism) -> float | None:
    # Realism is a float in JSON (0.0, 1.0) but may have been written as an int by hand: 1 == 1.0.
    return None if realism is None else float(realism)


def _group_key(record: dict) -> tuple:
    return record["codec"], int(record["level"]), _realism_key(record.get("realism"))


def _is_skipped(record: dict) -> bool:
    return bool(record.get("skipped"))


def _codec_order(results: dict, codecs) -> list[str]:
    """gencodec first, then the classical codecs in the order eval was given them, then any others."""
    baselines = list((results.get("settings") or {}).get("baselines") or [])

    def rank(codec: str) -> tuple:
        return codec != "gencodec", baselines.index(codec) if codec in baselines else len(baselines), codec
    return sorted(set(codecs), key=rank)


def summary_table(results: dict) -> list[dict]:
    """One row per (codec, level, realism): counts and metric means (None when nothing was measured)."""
    groups: dict[tuple, list[dict]] = {}
    for record in results.get("records", []):
        groups.setdefault(_group_key(record), []).append(record)
    distribution = {_group_key(d): d for d in results.get("distribution") or []}
    order = _codec_order(results, (codec for codec, _, _ in groups))
    rows = []
    for key in sorted(groups, key=lambda k: (order.index(k[0]), k[1], -1.0 if k[2] is None else k[2])):
        codec, level, realism = key
        measured = [r for r in groups[key] if not _is_skipped(r)]
        row = {"codec": codec, "level": level, "realism": realism,
               "images": len(measured), "skipped": len(groups[key]) - len(measured)}
        row.update({m: (geometric_mean_of if m in _GEOMETRIC else mean_of)(r.get(m) for r in measured)
                    for m in _MEANS})
        dist = distribution.get(key, {})
        row.update(fid=dist.get("fid"), kid=dist.get("kid"))
        rows.append(row)
    return rows


def _cell(row: dict, column: str) -> str:
    return format_value(row.get(column), "{:g}" if column == "realism" else _FORMATS.get(column, "{}"))


def format_table(rows: list[dict]) -> str:
    """The summary rows as an aligned plain-text table ("-" where there is no value)."""
    cells = [list(COLUMNS)] + [[_cell(row, c) for c in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    # The codec name reads best left-aligned, numbers right-aligned.
    return "\n".join("  ".join(text.ljust(w) if i == 0 else text.rjust(w)
                               for i, (text, w) in enumerate(zip(line, widths))).rstrip()
                     for line in cells)


# -- plots ------------------------------------------------------------------------------------

def model_label(results: dict) -> str:
    """The name a run is known by: its model name, else the start of its fingerprint."""
    model = results.get("model") or {}
    return model.get("name") or str(model.get("fingerprint") or "")[:8] or "model"


def _n_images(results: dict) -> int:
    return len(results.get("originals") or {r["image"] for r in results.get("records", [])})


def available_metrics(rows: list[dict]) -> list[str]:
    """The metrics with at least one value to plot."""
    return [m for m in METRICS if any(r.get(m) is not None and r.get("bpp") for r in rows)]


def _series_name(codec: str, realism: float | None) -> str:
    return codec if realism is None else f"{codec} r={realism:g}"


def plot_rate_quality(results: dict | Sequence[dict], out_dir: str | os.PathLike,
                      labels: Sequence[str] | None = None) -> list[Path]:
    """rd_<metric>.png and .svg for every metric measured: mean value against mean bpp, per codec.

    `results` may be one eval's results or a list of them; several are drawn
    on the same axes, each line labelled with its run's label (default: the
    model name).
    """
    # Figure without pyplot: no global backend switch and no figure registry to leak into.
    from matplotlib.figure import Figure

    runs = [results] if isinstance(results, dict) else list(results)
    if labels is None:
        labels = [model_label(r) for r in runs]
    if len(labels) != len(runs):
        raise GencodecError(f"{len(labels)} labels for {len(runs)} result sets")
    tables = [summary_table(r) for r in runs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # One colour per (codec, realism) and one line style per run, so runs compare codec by codec.
    series = list(dict.fromkeys((row["codec"], row["realism"]) for table in tables for row in table))
    colours = {s: f"C{i % 10}" for i, s in enumerate(series)}
    styles = ["-", "--", ":", "-."]
    models = " vs ".join(dict.fromkeys(labels))
    title_runs = f"{models} ({'/'.join(str(n) for n in sorted({_n_images(r) for r in runs}))} images)"

    written = []
    for metric in available_metrics([row for table in tables for row in table]):
        name, higher = METRICS[metric]
        fig = Figure(figsize=(7, 4.8), layout="constrained")
        ax = fig.add_subplot()
        for i, (label, table) in enumerate(zip(labels, tables)):
            for codec, realism in series:
                points = sorted((row["bpp"], row[metric], row["level"]) for row in table
                                if (row["codec"], row["realism"]) == (codec, realism)
                                and row.get(metric) is not None and row.get("bpp"))
                if not points:
                    continue
                x, y, _ = zip(*points)
                line_label = _series_name(codec, realism) + (f" ({label})" if len(runs) > 1 else "")
                ax.plot(x, y, styles[i % len(styles)], marker="o", markersize=4, color=colours[codec, realism],
                        label=line_label)
                if codec == "gencodec" and len(runs) == 1:
                    for xi, yi, level in points:
                        ax.annotate(f"L{level}", (xi, yi), textcoords="offset points", xytext=(3, 3),
                                    fontsize=7, color="0.4")
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (mean, log scale)")
        if higher is None:  # a ratio to the photo's: 1 is best, and x2 is as far off as x0.5
            ax.set_yscale("log")
            ax.axhline(1.0, color="0.6", linewidth=0.8)
            ax.set_ylabel(name)
        else:
            ax.set_ylabel(f"{name}, {'higher' if higher else 'lower'} is better")
        ax.set_title(f"{name} vs rate: {title_runs}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        for ext in ("png", "svg"):
            path = out / f"rd_{metric}.{ext}"
            fig.savefig(path, dpi=120)
            written.append(path)
    return written


# -- HTML -------------------------------------------------------------------------------------

def _inside(folder: Path, relative: str | None) -> Path | None:
    """folder/relative when it stays inside folder (results.json is data, not trusted paths)."""
    if not relative or os.path.isabs(relative):
        return None
    normal = os.path.normpath(relative)
    if normal == ".." or normal.startswith(".." + os.sep):
        return None
    return folder / normal


def _crop(folder: Path, relative: str | None, size: int = CROP_SIZE) -> str | None:
    """Cut the centre of folder/relative into folder/crops/; the crop's path relative to folder, or None."""
    from PIL import Image

    from .crops import centre_box, cut

    source = _inside(folder, relative)
    if source is None or not source.is_file():
        return None
    target = (folder / CROPS / source.relative_to(folder)).with_suffix(".png")
    if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
        try:
            with Image.open(source) as image:
                crop = cut(image, centre_box(*image.size, size))
                target.parent.mkdir(parents=True, exist_ok=True)
                crop.save(target)  # PNG: a lossy crop would add artefacts of its own to the comparison
        except OSError:
            return None  # an unreadable image is shown as missing rather than failing the whole page
    return target.relative_to(folder).as_posix()


def relative_url(relative: str) -> str:
    """An attribute-safe relative URL for a path (spaces, '#' and '?' in photo names included)."""
    return html.escape(quote(relative), quote=True)


def _metric_text(record: dict) -> str:
    parts = []
    if record.get("lpips") is not None:
        parts.append(f"LPIPS {record['lpips']:.4f}")
    if record.get("psnr") is not None:
        parts.append(f"PSNR {record['psnr']:.2f} dB")
    if record.get("thumb_psnr") is not None:
        parts.append(f"thumb {record['thumb_psnr']:.2f} dB")
    if record.get("colour_bias") is not None:
        parts.append("bias RGB " + "/".join(f"{v:+.1f}" for v in record["colour_bias"]))
    return ", ".join(parts)


def _best_classical(records: list[dict]) -> dict | None:
    """The classical file shown beside gencodec: lowest LPIPS, or highest PSNR where LPIPS is missing."""
    return best_classical_by_lpips([r for r in records if r.get("file")])


def _figure(folder: Path, file: str | None, caption: str) -> str:
    crop = _crop(folder, file)
    image = f"<img src='{relative_url(crop)}' alt=''>" if crop else "<div class='missing'>file missing</div>"
    return f"<figure>{image}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _html_table(rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row, c))}</td>" for c in COLUMNS) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html_report(results: dict, dir: str | os.PathLike) -> Path:
    """DIR/report.html: the model, notes, table, plots and centre crops side by side; opens from disk."""
    folder = Path(dir)
    model = results.get("model") or {}
    rows = summary_table(results)
    metrics = available_metrics(rows)
    plots = folder / PLOTS
    if any(not (plots / f"rd_{m}.png").is_file() for m in metrics):
        plot_rate_quality(results, plots)

    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'>",
        f"<title>gencodec eval: {esc(model_label(results))}</title>",
        "<style>body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td:first-child{text-align:left}"
        "figure{display:inline-block;margin:4px;vertical-align:top}figcaption{font-size:12px;max-width:256px}"
        ".plot{max-width:560px}.missing{width:128px;height:128px;background:#eee;color:#888;"
        "display:flex;align-items:center;justify-content:center}</style>",
        f"<h1>gencodec eval: {esc(model_label(results))}</h1>",
        "<p>" + "<br>".join(esc(f"{label}: {value}") for label, value in (
            ("model", model.get("name", "")), ("fingerprint", model.get("fingerprint", "")),
            ("trained steps", model.get("trained_steps", "")), ("levels", model.get("levels", "")),
            ("images", _n_images(results)))) + "</p>",
    ]
    if results.get("notes"):
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(str(n))}</li>" for n in results["notes"]) + "</ul>")
    parts += ["<h2>Summary</h2>", _html_table(rows)]
    fidelity = fidelity_table(results)
    if fidelity:
        parts += ["<h2>Fidelity beside the classical files</h2>",
                  "<p>thumb: PSNR of the 1/8 area-downsampled images (layout and colour); |bias|: mean absolute "
                  "per-channel colour bias in levels; mesh: RMS of the error's part that repeats every 8 pixels, "
                  "in levels (the photos' own is under 1); smooth x / busy x: the fine detail where the photo is "
                  "smooth / busy, as a multiple of the photo's (1 is faithful); cl: the best classical file at or "
                  "under our bytes by LPIPS; cl-by-PSNR: the best by PSNR; A/B/C: the targets of gencodec.evaluation.fidelity.</p>",
                  html_fidelity(fidelity)]
    parts.append("<h2>Rate and quality</h2>")
    parts += [f"<img class='plot' src='{relative_url(f'{PLOTS}/rd_{m}.png')}' alt='{esc(METRICS[m][0])}'>"
              for m in metrics if (plots / f"rd_{m}.png").is_file()]

    parts.append(f"<h2>Centre crops ({CROP_SIZE} px)</h2>")
    by_image: dict[str, dict[int, list[dict]]] = {}
    for record in results.get("records", []):
        by_image.setdefault(record["image"], {}).setdefault(int(record["level"]), []).append(record)
    originals = results.get("originals") or {}
    for image in sorted(by_image):
        parts.append(f"<h3>{esc(image)}</h3>")
        for level in sorted(by_image[image]):
            records = by_image[image][level]
            generated = sorted((r for r in records if r["codec"] == "gencodec"),
                               key=lambda r: _realism_key(r.get("realism")) or 0.0)
            best = _best_classical([r for r in records if r["codec"] != "gencodec"])
            shown = [(originals.get(image), "original")]
            for r in generated + ([best] if best else []):
                name = _series_name(r["codec"], _realism_key(r.get("realism")))
                name += " (best classical)" if r is best else ""
                caption = f"{name}: {r['bytes']} bytes, {r['bpp']:.5f} bpp"
                metric = _metric_text(r)
                shown.append((r.get("file"), caption + (f", {metric}" if metric else "")))
            parts.append(f"<div><h4>level {level}</h4>"
                         + "".join(_figure(folder, file, caption) for file, caption in shown) + "</div>")

    path = folder / REPORT
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


# -- command line -----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """`python -m gencodec.evaluation.report DIR`: the same as `gencodec report DIR`."""
    from gencodec.cli import main as gencodec_main

    return gencodec_main(["report", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
