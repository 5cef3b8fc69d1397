"""Atomic file writes: write to a temporary file in the target's folder, then rename over it.

A crash or an exception during the write leaves the previous file (or no file) in place, never a
half-written one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from morel.core.errors import MorelError

_UMASK = os.umask(0)
os.umask(_UMASK)


def check_writable_path(path: str | Path) -> Path:
    """Refuse (one-line MorelError) an output path that cannot be written: a symbolic link to a
    missing target, or a path below something that is not a folder. Changes nothing."""
    path = Path(path)
    for place in (path, *path.parents):
        if place.is_symlink() and not place.exists():
            raise MorelError(f"{path}: {place} is a symbolic link to a missing target "
                             f"({os.readlink(place)}); remove it or choose another --output")
        if place != path and place.exists():
            if not place.is_dir():
                raise MorelError(f"{path}: {place} is a file, not a folder; choose another "
                                 "--output")
            break
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on normal exit it replaces `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
