"""A file cut into numbered parts of at most a given size, and joined back (standard library only).

Some channels carry files of bounded size (16 MiB each out of a lent GPU
machine). `split_file` writes NAME.part-00, NAME.part-01, ... beside a
destination; `join_parts` rebuilds NAME from them, checking that none is
missing and that the result has the recorded size and sha256 (NAME.parts.json).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import GencodecError

MIB = 1 << 20
#: The largest part by default: what comes back from a lent GPU machine, per file.
DEFAULT_PART_BYTES = 16 * MIB


def _manifest(folder: Path, name: str) -> Path:
    return folder / f"{name}.parts.json"


def split_file(path: str | os.PathLike, out_dir: str | os.PathLike,
               part_bytes: int = DEFAULT_PART_BYTES) -> list[Path]:
    """Cut `path` into parts of at most `part_bytes` in `out_dir`, with NAME.parts.json; returns the parts."""
    path, out_dir = Path(path), Path(out_dir)
    if part_bytes < 1:
        raise GencodecError(f"a part must hold at least one byte, got {part_bytes}")
    out_dir.mkdir(parents=True, exist_ok=True)
    digest, parts = hashlib.sha256(), []
    with open(path, "rb") as f:
        while chunk := f.read(part_bytes):
            part = out_dir / f"{path.name}.part-{len(parts):02d}"
            part.write_bytes(chunk)
            digest.update(chunk)
            parts.append(part)
    if not parts:  # an empty file is one empty part
        part = out_dir / f"{path.name}.part-00"
        part.write_bytes(b"")
        parts.append(part)
    _manifest(out_dir, path.name).write_text(json.dumps(
        {"name": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest(),
         "parts": [p.name for p in parts]}, indent=1) + "\n")
    return parts


def join_parts(folder: str | os.PathLike, name: str, out: str | os.PathLike) -> Path:
    """Rebuild file `name` from its parts in `folder` (as split_file wrote them) at `out`."""
    folder, out = Path(folder), Path(out)
    manifest = _manifest(folder, name)
    try:
        record = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise GencodecError(f"no readable part list {str(manifest)!r}: {exc}") from None
    missing = [p for p in record["parts"] if not (folder / p).is_file()]
    if missing:
        raise GencodecError(f"{name}: part {missing[0]} is missing from {str(folder)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(out, "wb") as f:
        for part in record["parts"]:
            chunk = (folder / part).read_bytes()
            digest.update(chunk)
            f.write(chunk)
    if out.stat().st_size != record["bytes"] or digest.hexdigest() != record["sha256"]:
        out.unlink()
        raise GencodecError(f"{name}: the parts in {str(folder)!r} do not rebuild the file that was split "
                            "(size or sha256 differ)")
    return out
