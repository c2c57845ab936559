"""Durable sink state in the collection's own ``store.db``: which upstream, and how far shipped.

The table is created at sink start (``CREATE TABLE IF NOT EXISTS``), not by a numbered
migration: a collection that never had an upstream never gets it. ``shipped_lsn`` only moves
after the upstream acknowledged every op up to it, and it moves in its own committed
transaction, so a crash at any point re-ships at most one batch (idempotent upserts by key).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from edgerag.errors import NotFoundError
from edgerag.store.sqlite import Store
from edgerag.upstream.base import UpstreamSpec

DDL = """
CREATE TABLE IF NOT EXISTS upstreams (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, target TEXT NOT NULL, collection TEXT NOT NULL,
    api_key_env TEXT NOT NULL, shipped_lsn INTEGER NOT NULL DEFAULT 0, shipped_ts REAL,
    shipped_ops INTEGER NOT NULL DEFAULT 0, error TEXT, retention TEXT NOT NULL DEFAULT '{}'
)
"""


class UpstreamState:
    """Rows of the ``upstreams`` table, through a connection of its own (another process may be
    writing the same store: SQLite WAL serialises us with its busy timeout)."""

    def __init__(self, store: Store) -> None:
        # The store's URI (a file, or a shared-cache memory DB for in-memory collections).
        self._conn = store.connect()  # plain or keyed, like the store's own
        self._conn.execute("PRAGMA busy_timeout = 10000")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute(DDL)

    def close(self) -> None:
        self._conn.close()

    def add(self, name: str, spec: UpstreamSpec) -> None:
        """Register (or re-point) an upstream; a new target starts shipping from LSN 0."""
        with self._lock:
            old = self._conn.execute(
                "SELECT kind, target, collection FROM upstreams WHERE name = ?", (name,)
            ).fetchone()
            same = old == (spec.kind, spec.target, spec.collection)
            self._conn.execute(
                "INSERT INTO upstreams (name, kind, target, collection, api_key_env)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET kind = excluded.kind,"
                " target = excluded.target, collection = excluded.collection,"
                " api_key_env = excluded.api_key_env",
                (name, spec.kind, spec.target, spec.collection, spec.api_key_env),
            )
            if not same:
                self._conn.execute(
                    "UPDATE upstreams SET shipped_lsn = 0, shipped_ops = 0, shipped_ts = NULL"
                    " WHERE name = ?",
                    (name,),
                )

    def names(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT name FROM upstreams ORDER BY name")]

    def row(self, name: str) -> dict[str, Any]:
        cur = self._conn.execute("SELECT * FROM upstreams WHERE name = ?", (name,))
        row = cur.fetchone()
        if row is None:
            raise NotFoundError(
                f"no upstream {name!r} (add one with `edgerag upstream add qdrant|milvus TARGET`)"
            )
        return dict(zip([c[0] for c in cur.description], row, strict=True))

    def spec(self, name: str) -> UpstreamSpec:
        r = self.row(name)
        return UpstreamSpec(r["kind"], r["target"], r["collection"], r["api_key_env"])

    def shipped_lsn(self, name: str) -> int:
        return int(self.row(name)["shipped_lsn"])

    def mark_shipped(self, name: str, lsn: int, ops: int) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE upstreams SET shipped_lsn = MAX(shipped_lsn, ?),"
                " shipped_ops = shipped_ops + ?, shipped_ts = ?, error = NULL WHERE name = ?",
                (lsn, ops, time.time(), name),
            )

    def mark_error(self, name: str, error: str | None) -> None:
        with self._lock:
            self._conn.execute("UPDATE upstreams SET error = ? WHERE name = ?", (error, name))

    def last_op(self, doc_id: str) -> tuple[str, str]:
        """``(kind, origin)`` of the document's last op-log row (``("", "")`` if none)."""
        row = self._conn.execute(
            "SELECT kind, origin FROM oplog WHERE doc_id = ? ORDER BY lsn DESC LIMIT 1", (doc_id,)
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else ("", "")

    def documents(self, modality: str) -> list[dict[str, Any]]:
        """``doc_id, size, created, lsn`` of the edge's documents of ``modality``, oldest first."""
        rows = self._conn.execute(
            "SELECT doc_id, size, created, lsn FROM documents WHERE modality = ?"
            " ORDER BY created, doc_id",
            (modality,),
        )
        return [{"doc_id": r[0], "size": r[1], "created": r[2], "lsn": r[3]} for r in rows]

    def set_retention(self, name: str, policy_json: str) -> None:
        with self._lock:
            self.row(name)
            self._conn.execute(
                "UPDATE upstreams SET retention = ? WHERE name = ?", (policy_json, name)
            )
