"""The manifest of a command over many files: one JSON line per input, written as each input is done.

A record holds the input, and either what was written (output, bytes, bpp,
level, width, height, sha256, seconds) or the one-line error that stopped it.
Each process of a run appends to its own part (`manifest.jsonl.part-R`), one
line at a time, flushed and synced, so that a killed run loses at most the
line it was writing, which a reader ignores. A run started again reads every
part and the merged manifest, skips the inputs they record, and at the end
merges all into `manifest.jsonl`: one record per input, in input order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from .fileio import write_atomic


def part_path(manifest: Path, rank: int) -> Path:
    return manifest.with_name(f"{manifest.name}.part-{rank}")


def _parts(manifest: Path) -> list[Path]:
    return sorted(manifest.parent.glob(f"{manifest.name}.part-*"))


def read_records(path: Path) -> list[dict]:
    """The whole records of one manifest file; a torn last line (a killed writer) is left out."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "input" in record:
            records.append(record)
    return records


def recorded(manifest: Path) -> dict[str, dict]:
    """Input -> its latest record, from the merged manifest and every part left by an unfinished run."""
    latest: dict[str, dict] = {}
    for path in [manifest, *_parts(manifest)]:
        for record in read_records(path):
            latest[record["input"]] = record
    return latest


class ManifestWriter:
    """Appends this process's records to its part of the manifest."""

    def __init__(self, manifest: Path, rank: int):
        self.path = part_path(manifest, rank)
        records = read_records(self.path)  # drop a torn last line before appending after it
        if self.path.exists():
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in records))
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  (closed by close())

    def add(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def merge(manifest: Path, order: Iterable[str]) -> list[dict]:
    """Write one record per input (the latest) into `manifest`, in `order` (a shard's members, 'SHARD::NAME',
    just before the shard, as written), then any others, and remove the parts; returns the records."""
    latest = recorded(manifest)
    position = {source: i for i, source in enumerate(order)}

    def key(item: tuple[int, dict]) -> tuple[int, int, int]:
        written, record = item
        owner, member = record["input"].split("::", 1) if "::" in record["input"] else (record["input"], None)
        return position.get(owner, len(position)), member is None, written

    ordered = [record for _, record in sorted(enumerate(latest.values()), key=key)]
    write_atomic(manifest, "".join(json.dumps(record) + "\n" for record in ordered))
    for part in _parts(manifest):
        part.unlink()
    return ordered
