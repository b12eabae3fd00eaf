"""Fidelity against the classical files of the same size, per rate level, from an eval's records.

LPIPS (AlexNet) punishes the blur of a downscaled classical file far more than
a wrong colour or invented texture, so a model judged by LPIPS alone can drift
away from the photo. This table puts beside it what a file carries of the
picture: PSNR, thumb-PSNR (layout and colour, 1/8 area-downsampled) and the
colour bias, the fixed pattern a decoder may draw instead (mesh) and the texture it draws where the photo is
smooth and where it is busy (detail), for our file at realism 0 and 1 and for the best classical file
at or under our bytes, ranked by LPIPS (the file shown beside ours) and by
PSNR. The targets it checks:

    A  r=0 PSNR >= best classical PSNR (ranked by PSNR) - 1 dB
    B  r=1 thumb-PSNR >= thumb-PSNR of the classical file ranked by LPIPS - 1 dB, in the mean and
       on at least 3/4 of the photos; mean absolute colour bias <= 3 levels
    C  r=1 LPIPS <= the classical file's LPIPS - 0.10

Everything is read from results.json (gencodec.evaluation.evaluate); nothing is measured again.
"""

from __future__ import annotations

import math

MARGIN_DB = 1.0        # A and B: how far below the classical file ours may be
THUMB_SHARE = 0.75     # B: the share of photos that must be within the margin (18 of 24)
MAX_ABS_BIAS = 3.0     # B: mean absolute per-channel colour bias, in levels
LPIPS_LEAD = 0.10      # C: how far below the classical LPIPS ours must be

#: column -> (header, format) of the printed table, in order.
COLUMNS = {
    "level": ("level", "{}"), "images": ("n", "{}"), "bytes": ("bytes", "{:.0f}"), "bpp": ("bpp", "{:.4f}"),
    "r0_psnr": ("r0 PSNR", "{:.2f}"), "r0_thumb": ("r0 thumb", "{:.2f}"), "r0_bias": ("r0 |bias|", "{:.1f}"),
    "r0_lpips": ("r0 LPIPS", "{:.3f}"),
    "r1_psnr": ("r1 PSNR", "{:.2f}"), "r1_thumb": ("r1 thumb", "{:.2f}"), "r1_bias": ("r1 |bias|", "{:.1f}"),
    "r1_lpips": ("r1 LPIPS", "{:.3f}"), "r1_mesh": ("r1 mesh", "{:.1f}"),
    "r1_smooth": ("r1 smooth x", "{:.2f}"), "r1_busy": ("r1 busy x", "{:.2f}"),
    "cl_psnr": ("cl PSNR", "{:.2f}"), "cl_thumb": ("cl thumb", "{:.2f}"), "cl_bias": ("cl |bias|", "{:.1f}"),
    "cl_lpips": ("cl LPIPS", "{:.3f}"), "cl_mesh": ("cl mesh", "{:.1f}"),
    "cl_smooth": ("cl smooth x", "{:.2f}"), "cl_busy": ("cl busy x", "{:.2f}"),
    "clp_psnr": ("cl-by-PSNR PSNR", "{:.2f}"), "clp_thumb": ("cl-by-PSNR thumb", "{:.2f}"),
    "thumb_within": ("r1 thumb within 1 dB", "{}"), "A": ("A", "{}"), "B": ("B", "{}"), "C": ("C", "{}"),
}


def mean_of(values) -> float | None:
    """The mean of the values that are not None; None when there are none."""
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else None


def geometric_mean_of(values) -> float | None:
    """The geometric mean of the positive values that are not None (ratios average on a log scale)."""
    values = [math.log(float(v)) for v in values if v is not None and float(v) > 0]
    return math.exp(sum(values) / len(values)) if values else None


def format_value(value, template: str) -> str:
    """A table cell: `template` filled with the value, or "-" for a missing or non-finite one."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return template.format(value)


def _usable(record: dict) -> bool:
    return not record.get("skipped") and record.get("psnr") is not None


def best_classical_by_lpips(records: list[dict]) -> dict | None:
    """Of one photo and level's classical records: the lowest LPIPS (the highest PSNR without LPIPS)."""
    usable = [r for r in records if _usable(r)]
    with_lpips = [r for r in usable if r.get("lpips") is not None]
    if with_lpips:
        return min(with_lpips, key=lambda r: r["lpips"])
    return max(usable, key=lambda r: r["psnr"], default=None)


def best_classical_by_psnr(records: list[dict]) -> dict | None:
    """Of one photo and level's classical records: the best file by PSNR over every codec's search."""
    found = [r.get("by_psnr") or r for r in records if _usable(r)]
    return max(found, key=lambda r: r["psnr"], default=None)


def _check(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def fidelity_table(results: dict, realisms: tuple[float, float] = (0.0, 1.0)) -> list[dict]:
    """One row per gencodec level: ours at realism 0 and 1 beside the classical files, and targets A-C.

    A photo counts where it has our record at both realisms; the classical
    columns are empty when the eval ran without baselines.
    """
    r0, r1 = realisms
    by_photo: dict[tuple[int, str], dict] = {}
    for record in results.get("records", []):
        slot = by_photo.setdefault((int(record["level"]), record["image"]), {"classical": []})
        if record["codec"] == "gencodec":
            realism = record.get("realism")
            if realism is not None and float(realism) in (r0, r1) and _usable(record):
                slot[float(realism)] = record
        else:
            slot["classical"].append(record)
    rows = []
    for level in sorted({level for level, _ in by_photo}):
        photos = [slot for (lv, _), slot in sorted(by_photo.items()) if lv == level and r0 in slot and r1 in slot]
        if not photos:
            continue
        ours0, ours1 = [p[r0] for p in photos], [p[r1] for p in photos]
        cl = [best_classical_by_lpips(p["classical"]) for p in photos]
        clp = [best_classical_by_psnr(p["classical"]) for p in photos]
        row = {"level": level, "images": len(photos), "bytes": mean_of(r["bytes"] for r in ours0),
               "bpp": mean_of(r["bpp"] for r in ours0)}
        for prefix, group in (("r0", ours0), ("r1", ours1), ("cl", cl)):
            group = [r for r in group if r is not None]
            row.update({f"{prefix}_psnr": mean_of(r.get("psnr") for r in group),
                        f"{prefix}_thumb": mean_of(r.get("thumb_psnr") for r in group),
                        f"{prefix}_bias": mean_of(r.get("abs_colour_bias") for r in group),
                        f"{prefix}_lpips": mean_of(r.get("lpips") for r in group),
                        f"{prefix}_mesh": mean_of(r.get("mesh") for r in group),
                        f"{prefix}_smooth": geometric_mean_of(r.get("detail_smooth") for r in group),
                        f"{prefix}_busy": geometric_mean_of(r.get("detail_busy") for r in group)})
        row.update(clp_psnr=mean_of(r["psnr"] for r in clp if r is not None),
                   clp_thumb=mean_of(r.get("thumb_psnr") for r in clp if r is not None))
        pairs = [(o.get("thumb_psnr"), c.get("thumb_psnr")) for o, c in zip(ours1, cl) if c is not None]
        pairs = [(o, c) for o, c in pairs if o is not None and c is not None]
        within = sum(o >= c - MARGIN_DB for o, c in pairs)
        row["thumb_within"] = f"{within}/{len(pairs)}" if pairs else None
        row["A"] = _check(None if row["clp_psnr"] is None else row["r0_psnr"] >= row["clp_psnr"] - MARGIN_DB)
        row["B"] = _check(None if row["cl_thumb"] is None or row["r1_thumb"] is None else (
            row["r1_thumb"] >= row["cl_thumb"] - MARGIN_DB and within >= math.ceil(THUMB_SHARE * len(pairs))
            and (row["r1_bias"] or 0.0) <= MAX_ABS_BIAS))
        row["C"] = _check(None if row["cl_lpips"] is None or row["r1_lpips"] is None
                          else row["r1_lpips"] <= row["cl_lpips"] - LPIPS_LEAD)
        rows.append(row)
    return rows


def _cell(row: dict, column: str) -> str:
    return format_value(row.get(column), COLUMNS[column][1])


def format_fidelity(rows: list[dict]) -> str:
    """The rows as an aligned plain-text table, with a line that says what the columns are."""
    header = [COLUMNS[c][0] for c in COLUMNS]
    cells = [header] + [[_cell(row, c) for c in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    table = "\n".join("  ".join(text.rjust(w) for text, w in zip(line, widths)).rstrip() for line in cells)
    return (table + "\nthumb: PSNR of the 1/8 area-downsampled images (layout and colour); |bias|: mean absolute "
            "per-channel colour bias in levels; mesh: RMS of the error's part that repeats every 8 pixels, in "
            "levels (the photos' own is under 1); smooth x / busy x: the fine detail where the photo is smooth / busy "
            "(its smoothest / busiest third of 8-pixel windows), as a multiple of the photo's (1 is faithful; over 1 "
            "where smooth is texture drawn on a sky); cl: the best classical file at or under our bytes by LPIPS; "
            "cl-by-PSNR: the best by PSNR; A/B/C: the fidelity targets (gencodec.evaluation.fidelity)")


def html_fidelity(rows: list[dict]) -> str:
    """The rows as an HTML table."""
    import html
    head = "".join(f"<th>{html.escape(COLUMNS[c][0])}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row, c))}</td>" for c in COLUMNS) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
