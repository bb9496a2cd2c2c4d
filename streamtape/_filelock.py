"""A cross-process lock per cassette, so parallel test workers (pytest-xdist) never lose or tear
each other's recordings. The lock file lives in the temp directory, not beside the cassette, and
is removed when the lock is let go.

``lock`` and ``try_lock`` lock one open file, until it is closed: a save marks its temporary file
as in use this way, so that another save, cleaning up after killed ones, leaves it alone."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CassetteError

__all__ = ["cassette_lock", "lock", "try_lock"]

#: the lock files this thread holds, and how many times over (``cassette_lock`` is reentrant per thread:
#: a tape's save holds it while ``Cassette.save`` takes it again)
_HELD = threading.local()


@contextmanager
def cassette_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (by its absolute name) across processes and threads.

    The lock file is removed by its holder before it lets go, so nothing accumulates in the temp
    directory. A waiter that then gets the lock on the removed file sees that the name no longer
    leads to it, and starts over with the file now there (or a new one): two holders can never
    hold two different files of one name. The operating system lets go of a lock when its holder's
    process ends, however it ends, so a killed holder never blocks anyone (its lock file is reused,
    then removed, by the next holder). Reentrant within one thread."""
    digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:24]
    lock_path = Path(tempfile.gettempdir()) / f"streamtape-{digest}.lock"
    held: dict[Path, int] = _HELD.__dict__.setdefault("counts", {})
    if held.get(lock_path):
        held[lock_path] += 1
        try:
            yield
        finally:
            held[lock_path] -= 1
        return
    while True:
        fd = _open(lock_path, path)
        try:
            _acquire(fd)
        except BaseException:
            os.close(fd)
            raise
        if _still_named(fd, lock_path):
            break
        _release(fd)
        os.close(fd)
    held[lock_path] = 1
    try:
        yield
    finally:
        del held[lock_path]
        with contextlib.suppress(OSError):  # Windows cannot remove an open file: it is reused instead
            os.unlink(lock_path)
        _release(fd)
        os.close(fd)


def _open(lock_path: Path, cassette: Path) -> int:
    try:  # never through a symbolic link someone else put at the name
        return os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CassetteError(
            cassette, f"cannot save: its lock file {lock_path} cannot be opened ({reason}); remove that file, "
            "or point TMPDIR at a directory of your own"
        ) from None


def _still_named(fd: int, lock_path: Path) -> bool:
    try:
        named = os.stat(lock_path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


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
        while True:  # LK_LOCK gives up after 10 tries a second apart: a long save is waited for
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
                return
            except OSError as exc:
                if exc.errno != errno.EDEADLOCK:
                    raise

    def _try_acquire(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]

    def _release(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
