"""Uploaded files kept under ``<collection>/originals`` so citations can open the cited page.

File names are derived from the document id's hash, never from anything a client sent, so an
upload can't name a path. Deleting overwrites the bytes before unlinking: the deleted text should
not survive in the collection directory (on copy-on-write file systems the overwrite is best
effort; the unlink always happens).
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
from pathlib import Path

logger = logging.getLogger(__name__)


class Originals:
    """Original uploads of one collection."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory) / "originals"

    def path(self, doc_id: str) -> Path:
        return self.directory / hashlib.sha256(doc_id.encode()).hexdigest()

    def put(self, doc_id: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(doc_id)
        self.remove(doc_id)  # scrub the previous version of a replaced document
        tmp = target.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def get(self, doc_id: str) -> Path | None:
        path = self.path(doc_id)
        return path if path.is_file() else None

    def remove(self, doc_id: str) -> bool:
        path = self.path(doc_id)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        with open(path, "r+b") as fh:
            fh.write(b"\0" * size)
            fh.flush()
            os.fsync(fh.fileno())
        path.unlink()
        return True


def media_type(mime: str | None, source: str) -> str:
    """The Content-Type to serve a document with."""
    guessed, _ = mimetypes.guess_type(source)
    if mime and "/" in mime and mime != "application/octet-stream":
        return mime
    return guessed or "application/octet-stream"
