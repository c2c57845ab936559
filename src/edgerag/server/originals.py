"""Uploaded files kept under ``<collection>/originals`` so citations can open the cited page.

File names are derived from the document id's hash, never from anything a client sent, so an
upload can't name a path. Deleting overwrites the bytes before unlinking: the deleted text should
not survive in the collection directory (on copy-on-write file systems the overwrite is best
effort; the unlink always happens).

In an encrypted collection the files are sealed (AES-GCM, :mod:`edgerag.crypto`); ``get`` then
returns a decrypted copy in a private RAM directory (tmpfs), because the routes serve and
render files by path. The copies go when the document is removed and when the process exits.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import mimetypes
import os
import shutil
from pathlib import Path

from edgerag import crypto

logger = logging.getLogger(__name__)


class Originals:
    """Original uploads of one collection."""

    def __init__(self, directory: Path) -> None:
        self.collection = Path(directory)
        self.directory = self.collection / "originals"
        self._copies: Path | None = None  # decrypted copies (encrypted collections), in RAM

    def _key(self) -> bytes | None:
        """The collection key when the collection is encrypted (its files are sealed)."""
        if not crypto.collection_encrypted(self.collection):
            return None
        return crypto.require_key(self.collection, None)

    def path(self, doc_id: str) -> Path:
        return self.directory / hashlib.sha256(doc_id.encode()).hexdigest()

    def put(self, doc_id: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(doc_id)
        self.remove(doc_id)  # scrub the previous version of a replaced document
        key = self._key()
        if key is not None:
            crypto.write_sealed(target, data, key)
            return
        tmp = target.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def get(self, doc_id: str) -> Path | None:
        path = self.path(doc_id)
        if not path.is_file():
            return None
        key = self._key()
        return path if key is None else self._plain_copy(path, key)

    def _plain_copy(self, path: Path, key: bytes) -> Path:
        if self._copies is None:
            self._copies = crypto.ram_scratch_dir("edgerag-originals-")
            atexit.register(shutil.rmtree, self._copies, True)
        data = crypto.read_sealed(path, key)  # re-read each time: a re-upload replaces it
        copy = self._copies / path.name
        tmp = copy.with_name(f"{path.name}.{os.getpid()}.{id(data)}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, copy)
        return copy

    def remove(self, doc_id: str) -> bool:
        path = self.path(doc_id)
        if self._copies is not None:
            (self._copies / path.name).unlink(missing_ok=True)
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
