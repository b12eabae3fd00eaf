"""What a command over many files works on: its inputs expanded into items, each with its output's place.

`gencodec compress` and `decompress` take files, folders (searched
recursively), glob patterns and file lists (`@list.txt`, one path per line).
Each input becomes an Item whose `relative` path says where its output goes
below `--out-dir`, keeping the input's layout: a folder's files keep their
path below the folder, a glob's matches their path below the pattern's fixed
part, a list's entries the path they are given as, and a single file its name.

Imports nothing heavy, so that a wrong input fails before a model loads.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import GencodecError

_GLOB_CHARACTERS = set("*?[")
#: A webdataset shard: a tar whose members are the files (gencodec.cli.batch converts it into a shard).
SHARD_SUFFIX = ".tar"


@dataclass(frozen=True)
class Item:
    """One input file, and its output's path below the output folder (before the suffix changes)."""

    source: Path
    relative: PurePosixPath


def find_files(root: str | os.PathLike, suffixes: tuple[str, ...]) -> list[Path]:
    """Every file under `root` whose suffix (in lower case) is one of `suffixes`, recursively, sorted by
    relative path: the same list, and so the same split between processes, everywhere. Symlinked folders
    are followed (datasets are often symlink farms), each real folder once, so a link cycle cannot loop."""
    root = Path(root)
    if not root.exists():
        raise GencodecError(f"no such folder: {str(root)!r}")
    if not root.is_dir():
        raise GencodecError(f"not a folder: {str(root)!r}")
    found, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath, name)
            if path.suffix.lower() in suffixes and path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _relative(path: str | os.PathLike, what: str) -> PurePosixPath:
    """A path as given, made a safe place below the output folder: no root, no '..'."""
    parts = [part for part in PurePosixPath(Path(path).as_posix()).parts if part not in ("", ".", "/")]
    if not parts or ".." in parts or Path(path).is_absolute():
        raise GencodecError(f"{what} {str(path)!r} has no place below the output folder: give it as a relative "
                            "path without '..', or give its folder instead")
    return PurePosixPath(*parts)


def _from_list(list_file: str, suffixes: tuple[str, ...]) -> list[Item]:
    path = Path(list_file)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GencodecError(f"cannot read the file list {str(path)!r}: {exc.strerror or exc}") from None
    items = []
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            source = Path(entry) if Path(entry).is_absolute() else path.parent / entry
            items.append(Item(source, _relative(entry, f"{list_file}: entry")))
    return items


def _from_glob(pattern: str, suffixes: tuple[str, ...]) -> list[Item]:
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if _GLOB_CHARACTERS & set(part)), len(parts))
    base = Path(*parts[:fixed]) if fixed else Path(".")
    matches = sorted(Path(match) for match in glob.glob(pattern, recursive=True))
    files = [match for match in matches if match.is_file() and match.suffix.lower() in suffixes]
    return [Item(match, PurePosixPath(match.relative_to(base).as_posix())) for match in files]


def expand_inputs(specs: list[str], suffixes: tuple[str, ...]) -> list[Item]:
    """The items of files, folders, globs and @lists, in order; an error for an input that names nothing, or
    for two inputs whose outputs would land on the same path. Shards (.tar) are items too, found like files
    with one of `suffixes`."""
    suffixes = (*suffixes, SHARD_SUFFIX)
    items: list[Item] = []
    for spec in specs:
        if spec.startswith("@"):
            found = _from_list(spec[1:], suffixes)
        elif Path(spec).is_dir():
            found = [Item(path, PurePosixPath(path.relative_to(spec).as_posix()))
                     for path in find_files(spec, suffixes)]
        elif Path(spec).exists():
            found = [Item(Path(spec), PurePosixPath(Path(spec).name))]
        elif _GLOB_CHARACTERS & set(spec):
            found = _from_glob(spec, suffixes)
        else:
            raise GencodecError(f"no such file or folder: {spec!r}")
        if not found:
            raise GencodecError(f"{spec!r} names no files ({', '.join(suffixes)})")
        items.extend(found)
    unique: list[Item] = []
    seen: dict[PurePosixPath, Path] = {}
    for item in items:
        key = item.relative if item.source.suffix.lower() == SHARD_SUFFIX else item.relative.with_suffix("")
        if key in seen:
            if seen[key] != item.source:
                raise GencodecError(f"{str(seen[key])!r} and {str(item.source)!r} would both be written to "
                                    f"'{key}' below the output folder; give them in separate commands")
            continue  # the same file named twice is done once
        seen[key] = item.source
        unique.append(item)
    return unique
