"""Byte scans of a collection directory: does any file still hold a known fragment?

Used by the encryption tests (nothing readable in an encrypted directory) and reusable by
erasure tests (nothing left after a delete). Scans every regular file, hidden ones, ``-wal``
and ``-shm`` files and index generations included, as a thief copying the directory would.

Caution: reading ``store.db`` opens and closes a descriptor of it, which drops the POSIX locks
that SQLite connections of *this* process hold on it. Scan while no other process writes the
collection (or from a separate process).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def scan_dir_for(directory: Path, needles: Iterable[bytes]) -> dict[bytes, list[Path]]:
    """Every needle found, with the files that contain it (an empty dict: nothing found)."""
    wanted = [n for n in needles if n]
    found: dict[bytes, list[Path]] = {}
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        data = path.read_bytes()
        for needle in wanted:
            if needle in data:
                found.setdefault(needle, []).append(path)
    return found


def files_in(directory: Path) -> list[str]:
    """Relative names of every file scanned (so a test can show the scan saw the WAL etc.)."""
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
