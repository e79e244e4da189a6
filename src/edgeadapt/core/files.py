"""Writing files so that a reader never sees half of one, and a crash leaves the old file or the new one.

Every writer here goes through `atomic_write`: a temporary file created fresh in the target's folder
(`mkstemp`: O_CREAT|O_EXCL with a random name, so a file or symlink planted there is never written through),
the data written and fsynced, then renamed over the target and the folder fsynced (the rename is durable).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once at import: os.umask has no read-only form


@contextlib.contextmanager
def atomic_write(path: Path, durable: bool = True) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces `path` in one rename when the block ends without error
    (nothing changes otherwise). `durable`: fsync the data and the folder."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes it 0600: the file gets the mode any new file would
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    with atomic_write(path, durable) as handle:
        handle.write(data)


def write_json_atomic(path: Path, data: Any, indent: int | None = 2) -> None:
    """JSON via a fresh temporary file, fsync and a rename: a reader never sees a half-written file."""
    write_bytes_atomic(path, json.dumps(data, indent=indent).encode())


def file_name(text: str) -> str:
    """`text` as a file or folder name: every run of characters outside [A-Za-z0-9_.-] becomes one dash."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of a file, read in chunks (a model file does not fit in memory twice)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(folder: Path) -> dict[str, str]:
    """{path relative to `folder`: SHA-256} for every file under it."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}
