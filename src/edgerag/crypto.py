"""Encryption at rest: the one place that knows keys, the store cipher and sealed files.

A collection made with ``encrypt=True`` keeps ``store.db`` (rows, FTS5, vectors, thumbnails, op
log, WAL) encrypted by SQLCipher 4 and every file it writes besides through AES-256-GCM with a
fresh random nonce per write (:func:`seal` / :func:`unseal`). Index files are not written at all
(see ``Engine``: an encrypted collection's indexes live in RAM and are rebuilt from the store).

The user key (32 random bytes) comes from ``EDGERAG_KEY`` (base64) or a key file
(``EDGERAG_KEY_FILE`` / ``--key-file``, base64 text, readable by its owner only); it is never
written into the collection. Two subkeys are derived from it with HKDF-SHA256, one for SQLCipher
(used as a raw key: no PBKDF2 per connection) and one for sealed files, so neither cipher sees
the other's key.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import sqlite3
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgerag.errors import ConfigError, EdgeRagError

KEY_ENV = "EDGERAG_KEY"
KEY_FILE_ENV = "EDGERAG_KEY_FILE"
KEY_BYTES = 32
SEAL_MAGIC = b"ERS1"  # edgerag sealed, format 1: magic | 12-byte nonce | AES-GCM ciphertext+tag
NONCE_BYTES = 12
# A reader whose key was rotated under it re-reads the key source for this long.
ROTATION_GRACE_S = 10.0


class EncryptionKeyError(ConfigError):
    """The key of an encrypted collection is missing, malformed or wrong (CLI exit 2, one line)."""


class SealedFileError(EdgeRagError):
    """A sealed file failed authentication: altered, truncated, or sealed under another key."""


class TamperedStoreError(EdgeRagError):
    """A page of an encrypted store failed authentication: the file was altered or damaged."""


def _missing_extra() -> EdgeRagError:
    from edgerag.errors import MissingExtraError

    return MissingExtraError("sqlcipher3", "crypto", "encrypted collections")


# ----------------------------------------------------------------------------- keys


def decode_key(text: str | bytes, source: str) -> bytes:
    """The 32-byte key in base64 ``text``; ``source`` names where it came from for errors."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EncryptionKeyError(f"{source}: not base64 ({exc})") from exc
    if len(key) != KEY_BYTES:
        raise EncryptionKeyError(f"{source}: key is {len(key)} bytes, need {KEY_BYTES} (base64)")
    return key


def read_key_file(path: str | Path) -> bytes:
    """Read a key file, refusing one that group or others may read or write."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise EncryptionKeyError(f"key file {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise EncryptionKeyError(
            f"key file {path}: permissions {stat.S_IMODE(mode):04o} let others read it; "
            f"run `chmod 600 {path}`"
        )
    return decode_key(data, f"key file {path}")


def key_from_env() -> bytes | None:
    """The key from ``EDGERAG_KEY`` or the file named by ``EDGERAG_KEY_FILE``; None if neither.

    Re-read on every call: a process handed a key *file* follows a rotation (see
    :func:`rotate_store_key`) without a restart.
    """
    text = os.environ.get(KEY_ENV)
    if text:
        return decode_key(text, KEY_ENV)
    path = os.environ.get(KEY_FILE_ENV)
    return read_key_file(path) if path else None


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def write_key_file(path: str | Path, key: bytes) -> None:
    """Write ``key`` (base64) to ``path`` atomically with mode 0600."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, base64.b64encode(key) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def require_key(directory: object, key: bytes | None) -> bytes:
    """``key`` or the environment's, else the one-line error every command shows."""
    key = key if key is not None else key_from_env()
    if key is None:
        raise EncryptionKeyError(
            f"collection {directory} is encrypted: the key is missing "
            f"(set {KEY_ENV} to its base64, or pass --key-file / set {KEY_FILE_ENV})"
        )
    return key


def _subkey(key: bytes, purpose: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=b"edgerag " + purpose).derive(key)


# ----------------------------------------------------------------------------- store


def collection_encrypted(directory: Path) -> bool:
    """True when the collection in ``directory`` is encrypted (its ``config.json`` says so).

    Never decided by reading ``store.db`` itself: opening and closing a database file in a
    process that holds SQLite connections to it drops their POSIX locks (SQLite's documented
    pitfall), and concurrent writers then corrupt the store.
    """
    try:
        data = json.loads((Path(directory) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("encrypt") is True


def _sqlcipher() -> Any:
    try:
        import sqlcipher3
    except ImportError as exc:
        raise _missing_extra() from exc
    return sqlcipher3


def database_errors() -> tuple[type[BaseException], ...]:
    """Exception classes a store connection raises (sqlcipher3's do not subclass sqlite3's)."""
    try:
        import sqlcipher3
    except ImportError:
        return (sqlite3.DatabaseError,)
    return (sqlite3.DatabaseError, sqlcipher3.dbapi2.DatabaseError)


def operational_errors() -> tuple[type[BaseException], ...]:
    """``sqlite3.OperationalError`` and its sqlcipher3 twin (a bad FTS5 query, a busy store)."""
    try:
        import sqlcipher3
    except ImportError:
        return (sqlite3.OperationalError,)
    return (sqlite3.OperationalError, sqlcipher3.dbapi2.OperationalError)


def _pragma_key(name: str, key: bytes) -> str:
    # A raw 256-bit key ("x'…'"): SQLCipher skips its PBKDF2, so opening a connection is cheap.
    return f"PRAGMA {name} = \"x'{_subkey(key, b'store').hex()}'\""


def _raw_connect(uri: str, key: bytes, **kwargs: Any) -> Any:
    sqlcipher3 = _sqlcipher()
    conn = sqlcipher3.connect(uri, uri=True, **kwargs)
    conn.execute("PRAGMA cipher_log_level = NONE")  # errors are raised, not printed to stderr
    conn.execute(_pragma_key("key", key))
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a wrong key fails here
    return conn


def _not_a_database(exc: BaseException) -> bool:
    return "not a database" in str(exc)


def open_store_connection(
    uri: str, key: bytes | None, key_source: Callable[[], bytes | None] | None = None, **kwargs: Any
) -> Any:
    """A DB-API connection to the store at ``uri``: plain sqlite3 without a key, else SQLCipher.

    ``key_source`` (default: the environment) is asked again when the key turns out to have been
    rotated by another process: the connection reconnects with the new key instead of failing.

    Raises:
        EncryptionKeyError: the key does not open the store.
    """
    if key is None:
        return sqlite3.connect(uri, uri=True, **kwargs)
    try:
        conn = _raw_connect(uri, key, **kwargs)
    except database_errors() as exc:
        if not _not_a_database(exc):
            damaged = _tampered_error(uri, exc)
            if damaged is None:
                raise
            raise damaged from exc  # the schema page itself failed authentication
        raise EncryptionKeyError(
            f"{_uri_path(uri)}: wrong key for this encrypted collection "
            "(or its first page is damaged)"
        ) from exc
    return KeyedConnection(conn, uri, key, key_source or key_from_env, kwargs)


def _tampered_error(uri: str, exc: BaseException) -> TamperedStoreError | None:
    # SQLCipher reports a failed HMAC as SQLITE_CORRUPT / SQLITE_NOTADB, which surface as
    # the bare DatabaseError class ("malformed", "not a database", "vtable constructor
    # failed", ...); OperationalError (busy, bad SQL) and IntegrityError are other causes.
    if type(exc).__name__ != "DatabaseError" and "malformed" not in str(exc):
        return None
    return TamperedStoreError(
        f"{_uri_path(uri)}: a page failed authentication (the encrypted store was "
        "altered or damaged); restore it from a backup or a replica"
    )


def _uri_path(uri: str) -> str:
    return uri.removeprefix("file:").split("?", 1)[0]


class KeyedConnection:
    """A SQLCipher connection that survives a key rotation by another process.

    After ``PRAGMA rekey`` elsewhere, every page this connection reads fails authentication
    ("file is not a database"), and SQLCipher cannot re-key an open connection. Outside a
    transaction, a statement that fails so re-reads the key source and reconnects (for up to
    :data:`ROTATION_GRACE_S`, the time a rotation takes to install the new key file).
    """

    def __init__(
        self,
        conn: Any,
        uri: str,
        key: bytes,
        key_source: Callable[[], bytes | None],
        kwargs: dict[str, Any],
    ) -> None:
        self._conn = conn
        self._uri = uri
        self._key = key
        self._key_source = key_source
        self._kwargs = kwargs
        self._setup: list[str] = []  # PRAGMAs to replay on a new connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def execute(self, sql: str, *args: Any) -> Any:
        return self._retrying(self._conn_call("execute"), sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._retrying(self._conn_call("executemany"), sql, *args)

    def _conn_call(self, name: str) -> Callable[..., Any]:
        return lambda *a: getattr(self._conn, name)(*a)

    def _retrying(self, call: Callable[..., Any], sql: str, *args: Any) -> Any:
        try:
            try:
                result = call(sql, *args)
            except database_errors() as exc:
                if not _not_a_database(exc) or self._conn.in_transaction:
                    raise
                self._reconnect(exc)
                result = call(sql, *args)
        except database_errors() as exc:
            clear = self.tampered(exc)
            if clear is None:
                raise
            raise clear from exc
        if sql.lstrip().upper().startswith("PRAGMA") and "=" in sql:
            self._setup.append(sql)
        return _Cursor(result, self)

    def tampered(self, exc: BaseException) -> TamperedStoreError | None:
        """The clear error for a page that failed its HMAC (SQLCipher reports it as a malformed
        or foreign file), else None."""
        # SQLCipher reports a failed HMAC as SQLITE_CORRUPT / SQLITE_NOTADB, which surface as
        # the bare DatabaseError class ("malformed", "not a database", "vtable constructor
        # failed", ...); OperationalError (busy, bad SQL) and IntegrityError are other causes.
        return _tampered_error(self._uri, exc)

    def _reconnect(self, first: BaseException) -> None:
        deadline = time.monotonic() + ROTATION_GRACE_S
        while True:
            key = self._key_source()
            if key is not None:
                try:
                    conn = _raw_connect(self._uri, key, **self._kwargs)
                except database_errors():
                    conn = None
                if conn is not None:
                    for sql in self._setup:
                        conn.execute(sql)
                    self._conn.close()
                    self._conn, self._key = conn, key
                    return
            if time.monotonic() > deadline:
                raise EncryptionKeyError(
                    f"{_uri_path(self._uri)}: the key no longer opens this encrypted collection "
                    "(rotated? give the process the new key)"
                ) from first
            time.sleep(0.05)

    @property
    def key(self) -> bytes:
        """The key this connection opened the store with (the new one after a rotation)."""
        return self._key

    def close(self) -> None:
        self._conn.close()


def collection_key(directory: Path, key: bytes | None = None) -> bytes | None:
    """The key an existing collection needs, checked against its store; None when it is plain.

    Lets a front door (``edgerag serve``) refuse to start with one clear line instead of
    failing later inside a server's startup.
    """
    store = Path(directory) / "store.db"
    if not collection_encrypted(directory):
        return None
    key = require_key(directory, key)
    open_store_connection(f"file:{store}?mode=ro", key).close()
    return key


def rotate_collection_key(directory: Path, old: bytes, new: bytes) -> int:
    """Re-encrypt the store under ``new`` (PRAGMA rekey), then re-seal every sealed file.

    Readers keep going: SQLite WAL readers finish their snapshots under the old key, and a
    :class:`KeyedConnection` whose key source now yields ``new`` reconnects on its next read.
    Returns the number of files re-sealed.
    """
    store = Path(directory) / "store.db"
    conn = open_store_connection(f"file:{store}", old, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        rekey_store(conn, new)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no frames under the old key remain
    finally:
        conn.close()
    from edgerag.index.sealed import reseal_all  # the index layer's file format

    resealed = reseal_all(Path(directory) / "index", old, new)
    return resealed + reseal_tree(Path(directory) / "originals", old, new)


class _Cursor:
    """A cursor whose row reads report a tampered page as :class:`TamperedStoreError` (rows
    are decrypted as they are stepped, after ``execute`` returned)."""

    def __init__(self, cursor: Any, owner: KeyedConnection) -> None:
        self._cursor = cursor
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def _read(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._cursor, method)(*args)
        except database_errors() as exc:
            clear = self._owner.tampered(exc)
            if clear is None:
                raise
            raise clear from exc

    def fetchone(self) -> Any:
        return self._read("fetchone")

    def fetchall(self) -> Any:
        return self._read("fetchall")

    def fetchmany(self, *size: int) -> Any:
        return self._read("fetchmany", *size)

    def __iter__(self) -> _Cursor:
        return self

    def __next__(self) -> Any:
        return self._read("__next__")


def rekey_store(conn: Any, new: bytes) -> None:
    """Re-encrypt every page of the store under ``new`` (one transaction; readers wait)."""
    target = conn._conn if isinstance(conn, KeyedConnection) else conn
    target.execute(_pragma_key("rekey", new))
    if isinstance(conn, KeyedConnection):
        conn._key = new


# ----------------------------------------------------------------------------- scratch dirs


def scratch_dir(prefix: str, parent: Path | None = None) -> Path:
    """A new private directory ``<prefix><pid>-…`` in ``parent`` (default: the temp dir).

    Its owner removes it on close, but a process killed by a signal (SIGKILL, or SIGTERM
    without a handler) cannot clean up after itself, so its directory would stay forever: a disk
    (or, on tmpfs, RAM) leak growing with every crash. So first remove the directories of this
    naming in ``parent`` whose process is gone; a live pid's, or a name that does not parse, is
    kept.
    """
    parent = Path(tempfile.gettempdir() if parent is None else parent)
    for stale in parent.glob(f"{prefix}*-*"):
        pid = stale.name.removeprefix(prefix).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def ram_scratch_dir(prefix: str) -> Path:
    """A private directory in RAM (tmpfs ``/dev/shm``) for decrypted working files (see
    :func:`scratch_dir`: those of killed processes are removed first, so decrypted data does not
    outlive its process for long)."""
    ram = Path("/dev/shm")
    return scratch_dir(prefix, ram if ram.is_dir() else None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------- sealed files


def seal(data: bytes, key: bytes, context: bytes = b"") -> bytes:
    """Encrypt and authenticate ``data`` (AES-256-GCM, fresh nonce). ``context`` (e.g. the file
    name) is authenticated too, so a sealed file moved to another name does not open."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(_subkey(key, b"files")).encrypt(nonce, data, SEAL_MAGIC + context)
    return SEAL_MAGIC + nonce + body


def unseal(blob: bytes, key: bytes, context: bytes = b"", name: str = "sealed data") -> bytes:
    """The plaintext of :func:`seal`'s output; a flipped byte or another key → SealedFileError."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not blob.startswith(SEAL_MAGIC) or len(blob) < len(SEAL_MAGIC) + NONCE_BYTES + 16:
        raise SealedFileError(f"{name}: not an edgerag sealed file")
    nonce = blob[len(SEAL_MAGIC) : len(SEAL_MAGIC) + NONCE_BYTES]
    body = blob[len(SEAL_MAGIC) + NONCE_BYTES :]
    try:
        return AESGCM(_subkey(key, b"files")).decrypt(nonce, body, SEAL_MAGIC + context)
    except InvalidTag as exc:
        raise SealedFileError(
            f"{name}: authentication failed (the file was altered, or sealed under another key)"
        ) from exc


def write_sealed(path: Path, data: bytes, key: bytes) -> None:
    """Seal ``data`` into ``path`` atomically (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(seal(data, key, path.name.encode()))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_sealed(path: Path, key: bytes) -> bytes:
    return unseal(path.read_bytes(), key, path.name.encode(), name=str(path))


def reseal_tree(directory: Path, old: bytes, new: bytes) -> int:
    """Re-seal every sealed file under ``directory`` from ``old`` to ``new``; returns the count.

    Files already under ``new`` (a rotation re-run after a crash) are left as they are.
    """
    count = 0
    if not directory.is_dir():
        return 0
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        if not blob.startswith(SEAL_MAGIC):
            continue
        try:
            data = unseal(blob, old, path.name.encode(), name=str(path))
        except SealedFileError:
            unseal(blob, new, path.name.encode(), name=str(path))  # raises if neither key fits
            continue
        write_sealed(path, data, new)
        count += 1
    return count
