"""Temporary folders that a killed process cannot leak for good.

A `TemporaryDirectory` is removed when its process ends normally; a SIGKILL or a power loss runs no
cleanup, and the folder (a package's private copy: as large as the package) stays in the temporary folder
until something removes it. A folder made by `claimed` holds an exclusive `flock` on a file inside it for
as long as the folder is in use; the kernel drops that lock when its process dies, however it dies. So the
next `claimed` with the same prefix can tell a folder its owner left from one in use, in any process or
container sharing the temporary folder, and removes the left ones first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import weakref
from pathlib import Path

LOCK = ".in-use"


class Claimed:
    """A temporary folder in use by this process until `cleanup` (or the end of a `with` block)."""

    def __init__(self, prefix: str):
        self.name = tempfile.mkdtemp(prefix=prefix)  # mode 0700: this user's alone
        lock = os.open(Path(self.name) / LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        # As a TemporaryDirectory does: removed when the object is collected or the process exits, if no
        # one called cleanup first (a verified package that nothing closed).
        self._finalizer = weakref.finalize(self, _remove, self.name, lock)

    def cleanup(self) -> None:
        self._finalizer()  # runs once

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc) -> None:
        self.cleanup()


def _remove(name: str, lock: int) -> None:
    shutil.rmtree(name, ignore_errors=True)  # removed before the lock goes: no sweep races it
    os.close(lock)


def claimed(prefix: str) -> Claimed:
    """A new temporary folder named `prefix...`, after removing the ones with that prefix whose owners died."""
    sweep(prefix)
    return Claimed(prefix)


def sweep(prefix: str, root: Path | None = None) -> list[Path]:
    """Remove the folders `prefix*` in `root` (the temporary folder) that this user owns and no live process
    holds; the ones removed. A folder without the lock file is left alone: it may be one being made now."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            if entry.name.startswith(prefix) and _left_behind(Path(entry.path)):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
    return removed


def _left_behind(folder: Path) -> bool:
    """True when `folder` is a real folder of this user whose lock file nobody holds."""
    try:
        info = os.lstat(folder)  # a symlink planted with the prefix is never followed
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return False
        fd = os.open(folder / LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True  # the lock was free: its owner is gone
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
