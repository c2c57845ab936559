"""Erasure records: proof that a document was deleted, which outlives the document.

A record is written in the same SQLite transaction as the delete (so it exists exactly when the
delete committed) and holds: ``doc_hash`` (sha256 of the document id — the id itself is often a
file path or a name, which is personal data, so the record never stores it; a report is looked
up by hashing the id the asker gives), time, the delete's LSN, how many items and vectors were
removed, and the op's origin (the node that issued a fleet delete). Fleet-wide confirmation
(which replicas applied it) is read from the fleet, see :mod:`edgerag.fleet.erase`.
"""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

from edgerag.store.ops import Op


def doc_hash(doc_id: str) -> str:
    return hashlib.sha256(doc_id.encode()).hexdigest()


def begin(conn: sqlite3.Connection, op: Op, keys: set[int]) -> None:
    """Record the erasure of ``op.doc_id`` (its ``keys``) before the rows go; LSN 0 until
    :func:`stamp_lsn`. A delete of a document that is not here records nothing."""
    if not keys:
        return
    marks = ",".join("?" * len(keys))
    (vectors,) = conn.execute(
        f"SELECT COUNT(*) FROM vectors WHERE key IN ({marks})", sorted(keys)
    ).fetchone()
    conn.execute(
        "INSERT OR REPLACE INTO erasures (doc_hash, lsn, ts, items, vectors, origin, origin_lsn)"
        " VALUES (?, 0, ?, ?, ?, ?, ?)",
        (doc_hash(op.doc_id), op.ts, len(keys), int(vectors), op.origin, op.origin_lsn),
    )


def stamp_lsn(conn: sqlite3.Connection, doc_id: str, lsn: int) -> None:
    conn.execute(
        "UPDATE erasures SET lsn = ? WHERE doc_hash = ? AND lsn = 0", (lsn, doc_hash(doc_id))
    )


def records(conn: sqlite3.Connection, doc_id: str) -> list[dict[str, Any]]:
    """Every erasure of ``doc_id`` in this store, oldest first."""
    cur = conn.execute(
        "SELECT doc_hash, lsn, ts, items, vectors, origin, origin_lsn FROM erasures"
        " WHERE doc_hash = ? ORDER BY lsn",
        (doc_hash(doc_id),),
    )
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]
