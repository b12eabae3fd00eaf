"""One results folder from several `gencodec eval` folders: an evaluation split across jobs, joined.

    merge_results(["e1", "e2", "e3"], "all")   # all/results.json, results.csv, originals/, recon/

A long evaluation can be split by photos (halves of a set) or by levels, one
`gencodec eval` per job; this joins their records into one folder that
`gencodec report` renders like any other. The parts must describe the same
experiment: the same model (fingerprint and encoder search), the same
realisms, denoising steps and seed, and the same per-image metrics (LPIPS,
DISTS, which also decide how the classical files were picked). Levels and
classical codecs may differ: the merged settings list them all.

An item measured in two parts (the same codec, photo, level and realism) is
kept once if both measured the same (timings aside); two different answers
are refused, and so is one photo name that stands for two different photos.
FID and KID are measured over a whole run's patches, so the parts' values
cannot be combined: they are left out, with a note.

The merged results.json lists its parts in `merged_from`. A merge writes only
into a new or empty folder, or over a folder that an earlier merge wrote.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GencodecError
from ..fileio import atomic_output, write_atomic
from .report import RESULTS, _inside, load_results

MERGED_FROM = "merged_from"
#: Measured afresh by every run, so two runs of one item differ in them and nothing else.
TIMINGS = ("encode_s", "decode_s")
#: What `settings` holds that changes what a record's numbers mean: every part must agree on these.
SAME_SETTINGS = ("steps", "seed")
#: What `model` holds that must be the same in every part (as `gencodec eval` checks on resuming).
SAME_MODEL = ("fingerprint", "encoder_search")
FID_NOTE = ("FID/KID left out: they are computed over a whole run's patches and cannot be merged from "
            "its parts (run `gencodec eval --fid` over all the photos in one job for them)")


def _name(path: Path) -> str:
    return repr(str(path))


@dataclass
class _Part:
    """One eval folder to merge."""

    given: Path    # as the caller named it
    folder: Path   # the folder its results.json is in (the base of its relative paths)
    results: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return _name(self.given)


def merge_results(folders: Sequence[str | os.PathLike], out: str | os.PathLike) -> dict:
    """Merge the results of the eval folders `folders` into the folder `out`; return the merged results.

    Writes out/results.json (with `merged_from`), out/results.csv, and copies
    every original and reconstruction the merged records name (and our .gcz
    files beside them), at the same paths relative to `out`. Everything is
    checked before anything is written; `out` then appears whole, replacing
    an earlier merge there. Raises GencodecError on parts that do not belong
    together and on an `out` that must not be written.
    """
    if not folders:
        raise GencodecError("no eval folders to merge")
    parts = [_part(Path(f)) for f in folders]
    target = Path(out).resolve()
    _check_out(target, Path(out), parts)
    for part in parts:
        part.results = _load(part)
    first = parts[0]
    for part in parts[1:]:
        _check_same_experiment(first, part)
    records, record_sources = _merge_records(parts)
    originals, original_sources = _merge_originals(parts)
    results = {
        "model": dict(first.results.get("model") or {}),
        "settings": _merged_settings(parts, records),
        "notes": _merged_notes(parts),
        "records": records,
        "distribution": list(first.results.get("distribution") or []) if len(parts) == 1 else [],
        "originals": originals,
        MERGED_FROM: [str(part.given) for part in parts],
    }
    _write(target, results, _files_to_copy(records, record_sources, originals, original_sources))
    return results


# -- the parts and the output folder ------------------------------------------------------------

def _part(path: Path) -> _Part:
    """An input as given: an eval folder, or its results.json itself."""
    folder = path.parent if path.is_file() else path
    return _Part(given=path, folder=folder)


def _load(part: _Part) -> dict:
    try:
        results = load_results(part.given)
    except GencodecError as exc:
        raise GencodecError(f"{part.name} is not an eval folder to merge: {exc}") from exc
    for record in results["records"]:
        if not isinstance(record, dict) or any(k not in record for k in ("codec", "image", "level")):
            raise GencodecError(f"{part.name} has a record without codec, image and level: not a gencodec eval's")
    if not isinstance(results.get("originals") or {}, dict):
        raise GencodecError(f"{part.name} has no originals table: not a gencodec eval's results")
    return results


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_out(target: Path, given: Path, parts: list[_Part]) -> None:
    """Refuse an `out` that is an input, holds one, or is a folder that a merge did not make."""
    for part in parts:
        folder = part.folder.resolve()
        if folder == target:
            raise GencodecError(f"--out {_name(given)} is one of the folders to merge ({part.name}); "
                                "give another --out")
        if _is_within(folder, target):
            raise GencodecError(f"--out {_name(given)} holds {part.name}, one of the folders to merge, and "
                                "would be replaced; give another --out")
    if not target.exists():
        return
    if not target.is_dir():
        raise GencodecError(f"--out {_name(given)} is not a folder; give another --out")
    if not any(target.iterdir()):
        return
    try:
        made_by_merge = isinstance(load_results(target).get(MERGED_FROM), list)
    except GencodecError:
        raise GencodecError(f"--out {_name(given)} is a folder with other files, not an eval folder: a merge "
                            "writes only into a new or empty folder or over an earlier merge; "
                            "give another --out") from None
    if not made_by_merge:
        raise GencodecError(f"--out {_name(given)} holds a `gencodec eval` run's own results, which a merge "
                            "does not replace (only an earlier merge); give another --out")


# -- checks -----------------------------------------------------------------------------------

def _realisms(results: dict) -> list[float] | None:
    realisms = (results.get("settings") or {}).get("realism")
    return None if realisms is None else sorted({float(r) for r in realisms})


def _measured(results: dict) -> dict[str, bool]:
    """Which per-image network metrics the run had: from its notes, else from its records."""
    notes = [str(n) for n in results.get("notes") or []]
    if notes:
        return {m: not any(n.startswith(f"{m} skipped") for n in notes) for m in ("LPIPS", "DISTS")}
    records = [r for r in results["records"] if not r.get("skipped")]
    return {m: any(r.get(m.lower()) is not None for r in records) for m in ("LPIPS", "DISTS")}


def _check_same_experiment(first: _Part, part: _Part) -> None:
    """The parts must share the model and every setting that changes what a number means."""
    a, b = first.results, part.results
    for key in SAME_MODEL:
        ours, theirs = (a.get("model") or {}).get(key), (b.get("model") or {}).get(key)
        if ours != theirs:
            raise GencodecError(f"{part.name} is of another model than {first.name} ({key} {theirs!r}, not "
                                f"{ours!r}): only runs of one model merge")
    if _realisms(a) != _realisms(b):
        raise GencodecError(f"{part.name} measured realisms {_realisms(b)}, {first.name} {_realisms(a)}: "
                            "only runs with the same --realism merge")
    for key in SAME_SETTINGS:
        ours, theirs = (a.get("settings") or {}).get(key), (b.get("settings") or {}).get(key)
        if ours != theirs:
            raise GencodecError(f"{part.name} ran with {key} {theirs!r}, {first.name} with {ours!r}: only runs "
                                f"with the same --{key} merge")
    ours, theirs = _measured(a), _measured(b)
    for metric in ours:
        if ours[metric] != theirs[metric]:
            with_it, without = (first, part) if ours[metric] else (part, first)
            raise GencodecError(f"{without.name} was measured without {metric}, {with_it.name} with it: only "
                                "runs with the same metrics merge")


# -- merging ----------------------------------------------------------------------------------

def _item(record: dict) -> str:
    realism = record.get("realism")
    at = "" if realism is None else f" realism {float(realism):g}"
    return f"{record['codec']} level {record['level']}{at} of photo {str(record['image'])!r}"


def _same(a, b) -> bool:
    """Equal values, NaN matching NaN (a metric can be NaN in both runs of one item)."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _disagreement(old: dict, new: dict) -> str | None:
    """The first field (timings aside) in which two records of one item differ, or None."""
    for key in sorted(set(old) | set(new), key=str):
        if key not in TIMINGS and not _same(old.get(key), new.get(key)):
            return key
    return None


def _merge_records(parts: list[_Part]) -> tuple[list[dict], list[_Part]]:
    """Every part's records, each item once; with the part each kept record comes from."""
    from .evaluate import _record_key

    kept: dict[str, tuple[dict, _Part]] = {}
    for part in parts:
        for record in part.results["records"]:
            key = _record_key(record)
            if key not in kept:
                kept[key] = (record, part)
                continue
            old, old_part = kept[key]
            differs = _disagreement(old, record)
            if differs is not None:
                raise GencodecError(
                    f"{part.name} and {old_part.name} both hold {_item(record)} and disagree on {differs} "
                    f"({record.get(differs)!r} vs {old.get(differs)!r}): leave one of the two runs out")
    return [r for r, _ in kept.values()], [p for _, p in kept.values()]


def _sizes(results: dict) -> dict[str, tuple]:
    return {r["image"]: (r.get("width"), r.get("height")) for r in results["records"]}


def _same_file_or_pixels(a: Path, b: Path) -> bool:
    from ..image_reading import load_image  # no torch

    if a.read_bytes() == b.read_bytes():
        return True
    first, second = load_image(a), load_image(b)
    return first.shape == second.shape and np.array_equal(first, second)


def _merge_originals(parts: list[_Part]) -> tuple[dict[str, str], dict[str, _Part]]:
    """Every photo's original, by name; one name in two parts must be one photo."""
    originals: dict[str, str] = {}
    sources: dict[str, _Part] = {}
    sizes: dict[str, tuple[tuple, _Part]] = {}
    for part in parts:
        for image, size in _sizes(part.results).items():
            if image in sizes and None not in size and None not in sizes[image][0] and size != sizes[image][0]:
                other = sizes[image][1]
                raise GencodecError(f"{part.name} and {other.name} both have a photo {image!r}, of different "
                                    f"sizes: two photos under one name; rename one of them and evaluate it again")
            sizes.setdefault(image, (size, part))
        for image, relative in (part.results.get("originals") or {}).items():
            if image not in originals:
                originals[image], sources[image] = relative, part
                continue
            other = sources[image]
            ours, theirs = _inside(part.folder, relative), _inside(other.folder, originals[image])
            if ours is not None and theirs is not None and ours.is_file() and theirs.is_file() \
                    and not _same_file_or_pixels(ours, theirs):
                raise GencodecError(f"{part.name} and {other.name} both have a photo {image!r}, and they differ: "
                                    "two photos under one name; rename one of them and evaluate it again")
    return originals, sources


def _union(lists) -> list:
    return list(dict.fromkeys(v for values in lists for v in values))


def _merged_settings(parts: list[_Part], records: list[dict]) -> dict:
    """The first part's settings, with every part's levels and classical codecs; no FID over the parts."""
    settings = [p.results.get("settings") or {} for p in parts]
    merged = dict(settings[0])
    merged["levels"] = sorted(set(_union([s.get("levels") or [] for s in settings]
                                         + [[int(r["level"]) for r in records]])))
    # Baselines keep the order eval was given them (the report's column order), then any new ones.
    merged["baselines"] = _union([s.get("baselines") or [] for s in settings]
                                 + [[r["codec"] for r in records if r["codec"] != "gencodec"]])
    if len(parts) > 1:
        merged.update(fid=False, patch_size=None, limit=None)
    return merged


def _merged_notes(parts: list[_Part]) -> list[str]:
    notes = _union([p.results.get("notes") or [] for p in parts])
    if len(parts) > 1 and any(p.results.get("distribution") for p in parts):
        notes = [n for n in notes if not str(n).startswith("FID/KID")] + [FID_NOTE]
    names = ", ".join(str(p.given) for p in parts)
    return notes + [f"merged from {len(parts)} eval folder{'s' if len(parts) > 1 else ''}: {names}"]


# -- writing ----------------------------------------------------------------------------------

def _files_to_copy(records: list[dict], record_sources: list[_Part], originals: dict[str, str],
                   original_sources: dict[str, _Part]) -> list[tuple[Path, str]]:
    """(source file, path relative to the merged folder) for every picture the merged results name."""
    wanted: list[tuple[_Part, str]] = [(original_sources[image], rel) for image, rel in originals.items()]
    for record, part in zip(records, record_sources):
        if record.get("file"):
            wanted.append((part, record["file"]))
            if record["codec"] == "gencodec":  # our file beside its decodings, as eval leaves it
                wanted.append((part, str(Path(record["file"]).with_name(f"gencodec_L{record['level']}.gcz"))))
    files, seen = [], set()
    for part, relative in wanted:
        source = _inside(part.folder, relative)
        if source is None or not source.is_file():
            continue  # a path outside the folder, or a file that is gone: the report shows it missing
        relative = os.path.normpath(relative)
        if relative not in seen:
            seen.add(relative)
            files.append((source, relative))
    return files


def _write(target: Path, results: dict, files: list[tuple[Path, str]]) -> None:
    from .evaluate import write_csv

    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as tmp:
        tmp.mkdir()
        for source, relative in files:
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, tmp / relative)
        write_atomic(tmp / RESULTS, json.dumps(results, indent=1))
        write_csv(tmp / "results.csv", results["records"])
