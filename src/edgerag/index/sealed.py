"""Sealed index checkpoints: an encrypted collection's index, persisted without plaintext.

An encrypted collection's :class:`~edgerag.index.space.SpaceIndex` works in a private RAM
directory (tmpfs). After a checkpoint there, :func:`publish` packs the generation the manifest
names (manifest, engine files, the checkpointed prefix of the originals) into ONE file,
``<collection>/index/<space>.sealed``, sealed with AES-GCM (:func:`edgerag.crypto.seal`).
Opening the collection, :func:`restore` unpacks it into the RAM directory, where the usual
manifest checks apply, instead of rebuilding the index from the store.

File: one plaintext JSON header line (format, space, applied LSN: the same facts the plain
manifest shows, authenticated as associated data) then the sealed payload. Many processes: a
publish never replaces a sealed checkpoint at the same or a newer LSN (flock + atomic rename),
like plain checkpoints. Anything unusable (another key, a flipped byte) is removed and the
caller rebuilds from the store: derived data is never trusted over the store.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgerag import crypto

logger = logging.getLogger(__name__)

FORMAT = 1
SUFFIX = ".sealed"


def sealed_path(index_root: Path, space: str) -> Path:
    return index_root / f"{space}{SUFFIX}"


@contextmanager
def _locked(index_root: Path) -> Iterator[None]:
    index_root.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_root / ".sealed.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _header(path: Path) -> dict[str, object] | None:
    try:
        with open(path, "rb") as fh:
            return dict(json.loads(fh.readline()))
    except (OSError, ValueError):
        return None


def _pack(space_dir: Path) -> tuple[int, bytes]:
    """(applied LSN, payload) of the checkpoint the manifest in ``space_dir`` names."""
    manifest_bytes = (space_dir / "MANIFEST.json").read_bytes()
    body = json.loads(manifest_bytes)["body"]
    files: list[tuple[str, bytes]] = [("MANIFEST.json", manifest_bytes)]
    files += [(e["path"], (space_dir / e["path"]).read_bytes()) for e in body["files"]]
    orig = body["originals"]
    need = int(orig["rows"]) * 4 * int(body["dim"])
    if need:
        with open(space_dir / orig["file"], "rb") as fh:
            files.append((orig["file"], fh.read(need)))  # the checkpointed prefix only
    table = json.dumps([[name, len(data)] for name, data in files]).encode()
    payload = len(table).to_bytes(8, "little") + table + b"".join(d for _, d in files)
    return int(body["applied_lsn"]), payload


def publish(space_dir: Path, index_root: Path, space: str, key: bytes) -> bool:
    """Seal the checkpoint in ``space_dir`` to ``index_root/<space>.sealed`` unless the one
    there is at the same or a newer LSN. Returns True when written."""
    if not (space_dir / "MANIFEST.json").exists():
        return False
    lsn, payload = _pack(space_dir)
    target = sealed_path(index_root, space)
    with _locked(index_root):
        have = _header(target)
        if have is not None and int(str(have.get("applied_lsn", -1))) >= lsn:
            return False
        header = json.dumps({"format": FORMAT, "space": space, "applied_lsn": lsn}).encode()
        _write_sealed(target, header, payload, key)
    logger.info("sealed index checkpoint %s at LSN %d", target, lsn)
    return True


def restore(index_root: Path, space: str, space_dir: Path, key: bytes) -> bool:
    """Unpack the sealed checkpoint of ``space`` into the empty ``space_dir``; False when there
    is none or it is unusable (then it is removed, and the caller rebuilds from the store)."""
    target = sealed_path(index_root, space)
    try:
        blob = target.read_bytes()
    except FileNotFoundError:
        return False
    header, _, sealed = blob.partition(b"\n")
    try:
        if json.loads(header).get("format") != FORMAT:
            raise ValueError(f"format {json.loads(header).get('format')!r}")
        payload = crypto.unseal(sealed, key, header, name=str(target))
        size = int.from_bytes(payload[:8], "little")
        table = json.loads(payload[8 : 8 + size])
        offset = 8 + size
        for name, length in table:
            path = space_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload[offset : offset + length])
            offset += length
    except (ValueError, crypto.SealedFileError) as exc:
        logger.warning("sealed index checkpoint %s unusable (%s); rebuilding", target, exc)
        with _locked(index_root):
            if target.exists() and target.read_bytes() == blob:
                target.unlink()
        return False
    return True


def reseal_all(index_root: Path, old: bytes, new: bytes) -> int:
    """Re-seal every sealed checkpoint from ``old`` to ``new`` (key rotation); one that opens
    under neither is removed (it is rebuilt from the store). Returns the count re-sealed."""
    if not index_root.is_dir():
        return 0
    count = 0
    with _locked(index_root):
        for path in sorted(index_root.glob(f"*{SUFFIX}")):
            header, _, sealed = path.read_bytes().partition(b"\n")
            try:
                payload = crypto.unseal(sealed, old, header, name=str(path))
            except crypto.SealedFileError:
                try:
                    crypto.unseal(sealed, new, header, name=str(path))
                except crypto.SealedFileError:
                    path.unlink()
                continue
            _write_sealed(path, header, payload, new)
            count += 1
    return count


def _write_sealed(path: Path, header: bytes, payload: bytes, key: bytes) -> None:
    """``header`` + newline + the sealed payload, replacing ``path`` atomically and durably."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(header + b"\n" + crypto.seal(payload, key, header))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
