"""Byte scans of a collection directory: does any file still hold a known fragment?

Used by the encryption tests (nothing readable in an encrypted directory) and the erasure tests
(nothing left after a delete). Scans every regular file, hidden ones, ``-wal`` and ``-shm``
files, index generations, originals and temp files included, as a thief copying the directory
would, read raw.

Caution: reading ``store.db`` opens and closes a descriptor of it, which drops the POSIX locks
that SQLite connections of *this* process hold on it. Scan while no other process writes the
collection (or from a separate process).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def find_fragments(root: Path, needles: list[bytes]) -> list[tuple[Path, int]]:
    """Every (file, offset) under ``root`` where one of ``needles`` occurs."""
    needles = [n for n in needles if n]
    if not needles:
        raise ValueError("no needles to look for")
    found: list[tuple[Path, int]] = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        data = path.read_bytes()
        for needle in needles:
            start = data.find(needle)
            while start != -1:
                found.append((path, start))
                start = data.find(needle, start + 1)
    return found


def scan_dir_for(directory: Path, needles: Iterable[bytes]) -> dict[bytes, list[Path]]:
    """Every needle found, with the files that contain it (an empty dict: nothing found)."""
    found: dict[bytes, list[Path]] = {}
    for needle in (n for n in needles if n):
        paths = sorted({path for path, _ in find_fragments(directory, [needle])})
        if paths:
            found[needle] = paths
    return found


def files_in(directory: Path) -> list[str]:
    """Relative names of every file scanned (so a test can show the scan saw the WAL etc.)."""
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
