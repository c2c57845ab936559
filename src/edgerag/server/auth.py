"""API keys with scopes, stored hashed in ``<collection>/keys.json``.

A key looks like ``erk_<id>_<secret>``: the id finds the record without trying every hash,
the 256-bit random secret makes a plain SHA-256 as safe as a slow KDF (there is nothing to
brute-force), and verification stays in microseconds on every request. Scopes are ordered:
``read`` < ``write`` < ``admin``; a key satisfies every scope up to its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgerag.errors import ConfigError, EdgeRagError, NotFoundError

logger = logging.getLogger(__name__)

SCOPES = ("read", "write", "admin")
KEYS_FILE = "keys.json"
PREFIX = "erk"


class AuthError(EdgeRagError):
    """No key, or a key that is unknown or revoked (HTTP 401)."""


class ScopeError(EdgeRagError):
    """A valid key whose scope is too low for the request (HTTP 403)."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key: never the secret itself, only its SHA-256."""

    id: str
    scope: str
    name: str
    created: float
    sha256: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "scope": self.scope, "name": self.name, "created": self.created}


def scope_allows(have: str, need: str) -> bool:
    return SCOPES.index(have) >= SCOPES.index(need)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """The keys of one collection. Re-reads the file when it changes (CLI edits while serving)."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / KEYS_FILE
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._keys: dict[str, ApiKey] = {}

    def _load(self) -> dict[str, ApiKey]:
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                self._mtime, self._keys = None, {}
                return self._keys
            if mtime != self._mtime:
                try:
                    raw = json.loads(self.path.read_text())
                    self._keys = {k["id"]: ApiKey(**k) for k in raw.get("keys", [])}
                except (ValueError, TypeError, KeyError) as exc:
                    raise ConfigError(f"{self.path}: unreadable keys file: {exc}") from exc
                self._mtime = mtime
            return self._keys

    def _save(self, keys: dict[str, ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        # Owner-only: even hashes should not be world readable.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"keys": [asdict(k) for k in keys.values()]}, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def list(self) -> list[ApiKey]:
        return sorted(self._load().values(), key=lambda k: k.created)

    def __bool__(self) -> bool:
        return bool(self._load())

    def create(self, scope: str, name: str = "") -> tuple[ApiKey, str]:
        """Create a key; returns the record and the secret key (shown once, never stored)."""
        if scope not in SCOPES:
            raise ConfigError(f"unknown scope {scope!r}; choose one of {list(SCOPES)}")
        key_id = secrets.token_hex(4)
        secret = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, scope, name, round(time.time(), 3), _digest(secret))
        keys = dict(self._load())
        keys[key_id] = record
        self._save(keys)
        return record, secret

    def revoke(self, key_id: str) -> None:
        keys = dict(self._load())
        if key_id not in keys:
            raise NotFoundError(f"key {key_id!r} not found")
        del keys[key_id]
        self._save(keys)

    def verify(self, secret: str) -> ApiKey:
        """Return the record of ``secret`` or raise :class:`AuthError`."""
        parts = secret.split("_")
        record = self._load().get(parts[1]) if len(parts) >= 3 and parts[0] == PREFIX else None
        if record is None or not hmac.compare_digest(record.sha256, _digest(secret)):
            raise AuthError("invalid API key")
        return record

    def authorize(self, secret: str | None, need: str, required: bool) -> ApiKey | None:
        """Check a request's key against the scope it needs.

        Args:
            secret: the key the request carried, if any.
            need: the scope the route needs.
            required: whether this request must carry a key at all.
        """
        if not secret:
            if required:
                raise AuthError(f"this request needs an API key with scope {need!r}")
            return None
        record = self.verify(secret)
        if not scope_allows(record.scope, need):
            raise ScopeError(f"key {record.id} has scope {record.scope!r}; this needs {need!r}")
        return record
