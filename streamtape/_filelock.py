"""A cross-process lock per cassette, so parallel test workers (pytest-xdist) never lose or tear
each other's recordings. The lock file lives in the temp directory, not beside the cassette.

``lock`` and ``try_lock`` lock one open file, until it is closed: a save marks its temporary file
as in use this way, so that another save, cleaning up after killed ones, leaves it alone."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["cassette_lock", "lock", "try_lock"]


@contextmanager
def cassette_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (by its absolute name) across processes."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    lock_path = Path(tempfile.gettempdir()) / f"streamtape-{digest}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd)
        try:
            yield
        finally:
            _release(fd)
    finally:
        os.close(fd)


def lock(fd: int) -> None:
    """Lock the open file ``fd`` exclusively (waiting if need be); closing it releases the lock,
    as does the process ending, however it ends."""
    _acquire(fd)


def try_lock(fd: int) -> bool:
    """Lock the open file ``fd`` exclusively if no one else holds it; ``False`` if someone does.
    (Locks are per open file: this process holding it through another descriptor counts as someone.)"""
    try:
        _try_acquire(fd)
    except OSError:
        return False
    return True


try:
    import fcntl

    def _acquire(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _try_acquire(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _acquire(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]

    def _try_acquire(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]

    def _release(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
