"""Cross-process locks for an index directory that several processes open at once.

``DirLock`` is an ``fcntl.flock`` on ``<dir>/.lock``: checkpoints publish and remove files under
the exclusive lock; opening (reading a manifest and the files it names) and creating a private
originals file take it too, so no process ever loads a generation another is deleting.

``try_lock_file`` tells whether a file's owner is alive: every process holds an exclusive flock
on the originals file it appends to, so an unlocked, unreferenced originals file is garbage.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".lock"


class DirLock:
    """A re-entrant (per process) flock on ``directory/.lock``, shared or exclusive."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._mutex = threading.RLock()  # one holder thread at a time inside this process
        self._fd: int | None = None
        self._depth = 0
        self._exclusive = False

    @contextmanager
    def hold(self, exclusive: bool = True) -> Iterator[None]:
        with self._mutex:
            if self._depth:
                # nested use by the holder: an exclusive hold covers everything
                if exclusive and not self._exclusive:
                    raise RuntimeError(f"{self.directory}: cannot upgrade a shared lock")
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                self._fd, self._depth, self._exclusive = fd, 1, exclusive
                try:
                    yield
                finally:
                    self._fd, self._depth, self._exclusive = None, 0, False
            finally:
                os.close(fd)  # closing the descriptor releases the flock


def try_lock_file(path: Path) -> bool:
    """True when nobody holds an flock on ``path`` (its owner is gone); False when held."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
