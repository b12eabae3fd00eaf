"""Atomic writes: an output appears whole or not at all, and a failure leaves the old one as it was.

Every file or folder gencodec writes (compressed files, decoded images, eval
records, shards, checkpoints, exported models) goes through `atomic_output`:
the content is written to a hidden temporary name in the same folder, then
moved into place in one step.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def _create_exclusively(tmp: Path, path: Path) -> None:
    """Move a finished file into place only if nothing is there, even against a concurrent writer.

    A hard link fails if `path` exists, atomically; where the file system has
    no hard links, an O_EXCL placeholder claims the name first.
    """
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.replace(tmp, path)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write a file or a folder to; then move it into place.

    On success the temporary file or folder replaces `path`. Without
    `overwrite`, an existing `path` raises FileExistsError and is left alone,
    also when it appears while the content is being written. On any failure
    the temporary is removed and `path` is as it was. A folder that replaces
    another is swapped in by removing the old one first.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if tmp.is_dir():
            if os.path.lexists(path):
                if not overwrite:
                    raise FileExistsError(17, "File exists", str(path))
                _remove(path)
            os.replace(tmp, path)
        elif overwrite:
            os.replace(tmp, path)
        else:
            _create_exclusively(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str, overwrite: bool = True) -> None:
    """Write bytes (or UTF-8 text) to `path` atomically, synced to disk before it is moved into place."""
    if isinstance(data, str):
        data = data.encode()
    with atomic_output(path, overwrite=overwrite) as tmp:
        # O_EXCL: never write through a file or link that is already there.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
