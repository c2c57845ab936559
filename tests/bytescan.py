"""Byte scans of a collection directory: does any fragment of a document survive on disk?

Plain function, shared by the erasure tests (and the encryption tests: a scan of an encrypted
directory should find no plaintext at all).
"""

from __future__ import annotations

from pathlib import Path


def find_fragments(root: Path, needles: list[bytes]) -> list[tuple[Path, int]]:
    """Every (file, offset) under ``root`` where one of ``needles`` occurs, in every file
    (store.db, its WAL and shm, index generations, originals, temp files), read raw."""
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
