"""The collection store: SQLite in WAL mode, one writer, a read connection per thread.

Rows (documents, items, vectors, FTS5) and the op-log row that records the change are written
in one transaction, so the log never disagrees with the store.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from edgerag import crypto
from edgerag.entities import graph as entity_graph
from edgerag.entities import normalize as normalize_entity
from edgerag.errors import ConfigError, EdgeRagError, NotFoundError
from edgerag.ingest.structure import context_text
from edgerag.privacy import erasure
from edgerag.retrieval.filters import Filters, where_clause
from edgerag.store.ops import (
    DELETE,
    UPSERT,
    DocumentRecord,
    ItemRecord,
    Op,
    SpaceVectors,
    UnitVectors,
)
from edgerag.store.schema import migrate
from edgerag.types import SpaceSpec

logger = logging.getLogger(__name__)

ITEM_COLUMNS = (
    "i.key, i.item_id, i.doc_id, i.position, i.modality, i.text, i.page, i.char_start, "
    "i.char_end, i.t_start, i.t_end, i.metadata, d.source, d.title"
)


class StoreError(EdgeRagError):
    """The database could not be opened or written."""


def _keys_blob(keys: Any) -> bytes:
    return np.asarray(sorted({int(k) for k in keys}), dtype="<i8").tobytes()


class Store:
    """SQLite store of one collection. ``path=None`` keeps it in memory (tests).

    ``key``: the collection key of an encrypted store (SQLCipher, see :mod:`edgerag.crypto`).
    Without one, an existing store that turns out to be encrypted takes the environment's key.
    """

    def __init__(
        self, path: Path | None, synchronous: str = "FULL", key: bytes | None = None
    ) -> None:
        if key is None and path is not None and crypto.collection_encrypted(path.parent):
            key = crypto.require_key(path.parent, None)
        self._key = key if path is not None else None
        if path is None:
            self._uri = f"file:edgerag-{uuid.uuid4().hex}?mode=memory&cache=shared"
        else:
            self._uri = f"file:{path}"
        self._synchronous = synchronous
        self._local = threading.local()
        # Every live thread's reader, closed together on close(). A thread that ended has its
        # reader closed when the next one opens: server thread pools retire idle threads, and
        # keeping their connections would leak two file descriptors each until EMFILE.
        self._readers: dict[threading.Thread, sqlite3.Connection] = {}
        self._readers_lock = threading.Lock()
        self._write_lock = threading.RLock()
        try:
            with _creation_lock(path):
                self._writer = self._connect(write=True)
                migrate(self._writer)
            self._backfill_entities()
        except crypto.database_errors() as exc:
            raise StoreError(f"{path}: cannot open store: {exc}") from exc
        self._counted: tuple[int, int] = (-1, 0)  # (LSN, item count) for entity IDF

    # connections -------------------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        """A new connection of this store's kind (plain or keyed) for a component of its own."""
        return crypto.open_store_connection(
            self._uri, self._key, check_same_thread=False, isolation_level=None
        )

    @property
    def encrypted(self) -> bool:
        return self._key is not None

    @property
    def key(self) -> bytes | None:
        """The key that opens the store now (after a rotation: the one this thread's reader
        reconnected with)."""
        return getattr(getattr(self._local, "conn", None), "key", None) or self._key

    def _connect(self, write: bool) -> sqlite3.Connection:
        conn = self.connect()
        conn.execute("PRAGMA busy_timeout = 10000")
        if write:
            if "mode=memory" not in self._uri:
                conn.execute("PRAGMA journal_mode = WAL")
            # FULL: an acknowledged write survives power loss, not only a process crash.
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA secure_delete = ON")  # deleted text does not linger in pages
        else:
            conn.execute("PRAGMA query_only = ON")
        return conn

    @property
    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(write=False)
            self._local.conn = conn
            with self._readers_lock:
                for thread in [t for t in self._readers if not t.is_alive()]:
                    self._readers.pop(thread).close()
                self._readers[threading.current_thread()] = conn
        return conn

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers.values():
                conn.close()
            self._readers = {}
        self._writer.close()

    # spaces ------------------------------------------------------------------------------
    def spaces(self) -> dict[str, SpaceSpec]:
        rows = self._reader.execute("SELECT name, encoder, version, dim, metric FROM spaces")
        return {r[0]: SpaceSpec(*r) for r in rows}

    def put_space(self, spec: SpaceSpec) -> None:
        with self._write_lock:
            self._writer.execute(
                "INSERT OR REPLACE INTO spaces VALUES (?, ?, ?, ?, ?)",
                (spec.name, spec.encoder, spec.version, spec.dim, spec.metric),
            )

    def _backfill_entities(self) -> None:
        """A store created before the entity graph (migration 2) gets its graph once."""
        conn = self._writer
        pending = "SELECT value FROM meta WHERE key = 'entities_backfill'"
        if conn.execute(pending).fetchone() is None:
            return  # the usual case: no write lock taken just to open
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute(pending).fetchone() is not None:  # another process may have done it
                done = entity_graph.backfill(conn)
                conn.execute("DELETE FROM meta WHERE key = 'entities_backfill'")
                if done:
                    logger.info("entity graph built for %d existing documents", done)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # writes ------------------------------------------------------------------------------
    def apply(self, op: Op) -> int:
        """Apply ``op`` and append it to the op log atomically; return its LSN."""
        return self.apply_many([op])[0]

    def apply_many(self, ops: list[Op]) -> list[int]:
        """Apply ``ops`` in order in ONE transaction (one fsync), each with its own LSN.

        Replication applies batches this way: with ``synchronous=FULL`` the commit, not the
        rows, is what costs.
        """
        for op in ops:
            if op.kind not in (UPSERT, DELETE):
                raise ConfigError(f"unknown op kind {op.kind!r}")
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                lsns = [self._apply_logged(conn, op) for op in ops]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if any(op.kind == DELETE for op in ops):
                self._purge(conn)
        for op, lsn in zip(ops, lsns, strict=True):
            op.lsn = lsn
        return lsns

    def _apply_logged(self, conn: sqlite3.Connection, op: Op) -> int:
        touched = self._apply_rows(conn, op)
        cur = conn.execute(
            "INSERT INTO oplog (ts, kind, doc_id, content_hash, keys, origin, origin_lsn)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                op.ts,
                op.kind,
                op.doc_id,
                op.document.content_hash if op.document else None,
                _keys_blob(touched),
                op.origin,
                op.origin_lsn,
            ),
        )
        lsn = int(cur.lastrowid or 0)
        conn.execute("UPDATE documents SET lsn = ? WHERE doc_id = ?", (lsn, op.doc_id))
        if op.kind == DELETE:  # the erasure record gets the delete's LSN, same transaction
            erasure.stamp_lsn(conn, op.doc_id, lsn)
        return lsn

    @staticmethod
    def _purge(conn: sqlite3.Connection) -> None:
        """Leave no trace of deleted text on disk.

        secure_delete zeroes freed pages, but FTS5 (before SQLite 3.42's secure-delete option)
        keeps deleted tokens in old index segments until they merge, and the WAL keeps old page
        images until a checkpoint: merge everything and truncate the WAL.
        """
        conn.execute("INSERT INTO items_fts(items_fts) VALUES ('optimize')")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _apply_rows(self, conn: sqlite3.Connection, op: Op) -> set[int]:
        old = {r[0] for r in conn.execute("SELECT key FROM items WHERE doc_id = ?", (op.doc_id,))}
        # The entity graph is derived from the item texts here, in the same transaction.
        entity_graph.unindex_document(conn, op.doc_id, old)
        if op.kind == DELETE:
            erasure.begin(conn, op, old)
            self._delete_keys(conn, old)
            conn.execute("DELETE FROM documents WHERE doc_id = ?", (op.doc_id,))
            return old
        if op.document is None:
            raise ConfigError(f"upsert op for {op.doc_id!r} carries no document")
        new = {item.key for item in op.items}
        self._delete_keys(conn, old - new)
        self._put_document(conn, op.document, op.ts)
        self._put_items(conn, op.doc_id, op.items, op.document.metadata)
        entity_graph.index_document(conn, op.doc_id, op.items)
        for space, sv in op.vectors.items():
            self._put_vectors(conn, space, sv)
        # An op's unit vectors replace the document's; an op without any leaves none (the
        # composer then encodes those units at query time).
        conn.executemany("DELETE FROM unit_vectors WHERE key = ?", ((k,) for k in old | new))
        if op.units is not None:
            self._put_units(conn, op.units)
        return old | new

    @staticmethod
    def _delete_keys(conn: sqlite3.Connection, keys: set[int]) -> None:
        for key in keys:
            conn.execute("DELETE FROM items WHERE key = ?", (key,))
            conn.execute("DELETE FROM items_fts WHERE rowid = ?", (key,))
            conn.execute("DELETE FROM vectors WHERE key = ?", (key,))
            conn.execute("DELETE FROM unit_vectors WHERE key = ?", (key,))

    @staticmethod
    def _put_document(conn: sqlite3.Connection, doc: DocumentRecord, ts: float) -> None:
        conn.execute(
            "INSERT INTO documents (doc_id, source, modality, mime, content_hash, size, title,"
            " metadata, created, updated, lsn, redactions)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)"
            " ON CONFLICT(doc_id) DO UPDATE SET source=excluded.source,"
            " modality=excluded.modality, mime=excluded.mime,"
            " content_hash=excluded.content_hash, size=excluded.size, title=excluded.title,"
            " metadata=excluded.metadata, updated=excluded.updated,"
            " redactions=excluded.redactions",
            (
                doc.doc_id,
                doc.source,
                doc.modality,
                doc.mime,
                doc.content_hash,
                doc.size,
                doc.title,
                json.dumps(doc.metadata),
                ts,
                ts,
                json.dumps(doc.redactions, sort_keys=True),
            ),
        )

    @staticmethod
    def _put_items(
        conn: sqlite3.Connection, doc_id: str, items: list[ItemRecord], doc_meta: dict[str, Any]
    ) -> None:
        # Three statements per document, not three per item (executemany).
        conn.executemany(
            "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    it.key,
                    it.item_id,
                    doc_id,
                    it.position,
                    it.modality,
                    it.text,
                    it.page,
                    it.char_start,
                    it.char_end,
                    it.t_start,
                    it.t_end,
                    json.dumps({**doc_meta, **it.metadata}),
                    it.thumbnail,
                )
                for it in items
            ),
        )
        conn.executemany("DELETE FROM items_fts WHERE rowid = ?", ((it.key,) for it in items))
        # BM25 sees the section path too (contextual header); the stored text stays clean.
        conn.executemany(
            "INSERT INTO items_fts (rowid, text) VALUES (?, ?)",
            ((it.key, context_text(it.text, it.metadata)) for it in items),
        )

    @staticmethod
    def _put_vectors(conn: sqlite3.Connection, space: str, sv: SpaceVectors) -> None:
        vecs = np.ascontiguousarray(sv.vectors, dtype="<f4")
        conn.executemany(
            "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?)",
            (
                (space, int(k), sv.encoder, sv.version, vecs[i].tobytes())
                for i, k in enumerate(sv.keys)
            ),
        )

    @staticmethod
    def _put_units(conn: sqlite3.Connection, uv: UnitVectors) -> None:
        codes = np.ascontiguousarray(uv.codes, dtype=np.int8)
        conn.executemany(
            "INSERT OR REPLACE INTO unit_vectors VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    int(uv.keys[i]),
                    int(uv.positions[i]),
                    int(uv.checks[i]),
                    uv.encoder,
                    uv.version,
                    float(uv.scales[i]),
                    codes[i].tobytes(),
                )
                for i in range(len(uv))
            ),
        )

    def put_units(self, uv: UnitVectors) -> None:
        """Write unit vectors of items that exist (``edgerag check --repair``): no op, since
        they are derived from the items' text like the entity graph."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "DELETE FROM unit_vectors WHERE key = ?", ((int(k),) for k in set(uv.keys))
                )
                self._put_units(conn, uv)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def prune_units(self) -> int:
        """Drop unit vectors whose item is gone (``edgerag check --repair``)."""
        with self._write_lock:
            cur = self._writer.execute(
                "DELETE FROM unit_vectors WHERE key NOT IN (SELECT key FROM items)"
            )
            return int(cur.rowcount)

    def unit_vectors(
        self, keys: Sequence[int], encoder: str | None = None, version: str | None = None
    ) -> dict[tuple[int, int], tuple[int, np.ndarray]]:
        """``(key, position) -> (checksum, float32 vector)`` of the items' stored unit vectors,
        in one query; only those of ``encoder``/``version`` when given."""
        keys = sorted({int(k) for k in keys})
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = self._reader.execute(
            "SELECT key, position, checksum, encoder, version, scale, vector FROM unit_vectors"
            f" WHERE key IN ({marks})",
            keys,
        )
        return {
            (key, pos): (check, np.frombuffer(blob, dtype=np.int8).astype(np.float32) * scale)
            for key, pos, check, enc, ver, scale, blob in rows
            if (encoder is None or enc == encoder) and (version is None or ver == version)
        }

    def units_of(self, keys: Sequence[int]) -> UnitVectors | None:
        """The stored unit vectors of ``keys`` as one block (for ``materialize``)."""
        keys = sorted({int(k) for k in keys})
        if not keys:
            return None
        marks = ",".join("?" * len(keys))
        rows = self._reader.execute(
            "SELECT key, position, checksum, encoder, version, scale, vector FROM unit_vectors"
            f" WHERE key IN ({marks}) ORDER BY key, position",
            keys,
        ).fetchall()
        if not rows:
            return None
        return UnitVectors(
            rows[0][3],
            rows[0][4],
            keys=np.array([r[0] for r in rows], dtype=np.int64),
            positions=np.array([r[1] for r in rows], dtype=np.int32),
            checks=np.array([r[2] for r in rows], dtype=np.uint32),
            scales=np.array([r[5] for r in rows], dtype=np.float32),
            codes=np.stack([np.frombuffer(r[6], dtype=np.int8) for r in rows]),
        )

    def rebuild_fts(self) -> int:
        """Rewrite every full-text row from the items (``edgerag check --repair``)."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = list(fts_rows(conn))
                conn.execute("DELETE FROM items_fts")
                conn.executemany("INSERT INTO items_fts (rowid, text) VALUES (?, ?)", rows)
                n = len(rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return n

    # reads -------------------------------------------------------------------------------
    def last_lsn(self) -> int:
        row = self._reader.execute("SELECT COALESCE(MAX(lsn), 0) FROM oplog").fetchone()
        return int(row[0])

    def document(self, doc_id: str) -> dict[str, Any] | None:
        cur = self._reader.execute("SELECT * FROM documents WHERE doc_id = ?", (doc_id,))
        row = cur.fetchone()
        if row is None:
            return None
        doc = dict(zip([c[0] for c in cur.description], row, strict=True))
        doc["metadata"] = json.loads(doc["metadata"])
        doc["redactions"] = json.loads(doc["redactions"])
        doc["items"] = self._reader.execute(
            "SELECT COUNT(*) FROM items WHERE doc_id = ?", (doc_id,)
        ).fetchone()[0]
        return doc

    def documents(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        cur = self._reader.execute(
            "SELECT d.*, (SELECT COUNT(*) FROM items i WHERE i.doc_id = d.doc_id) AS items"
            " FROM documents d ORDER BY d.created, d.doc_id LIMIT ? OFFSET ?",
            (limit, offset),
        )
        names = [c[0] for c in cur.description]
        out = []
        for row in cur:
            doc = dict(zip(names, row, strict=True))
            doc["metadata"] = json.loads(doc["metadata"])
            doc["redactions"] = json.loads(doc["redactions"])
            out.append(doc)
        return out

    def erasures(self, doc_id: str) -> list[dict[str, Any]]:
        """Erasure records of ``doc_id`` (looked up by its sha256; see ``privacy.erasure``)."""
        return erasure.records(self._reader, doc_id)

    def doc_keys(self, doc_id: str) -> list[int]:
        rows = self._reader.execute(
            "SELECT key FROM items WHERE doc_id = ? ORDER BY position", (doc_id,)
        )
        return [r[0] for r in rows]

    def keys_touched_since(self, lsn: int, upto: int | None = None) -> np.ndarray:
        """Every item key changed by an op in ``(lsn, upto]`` (index catch-up)."""
        blobs = self._reader.execute(
            "SELECT keys FROM oplog WHERE lsn > ? AND lsn <= ?",
            (lsn, 2**63 - 1 if upto is None else upto),
        )
        parts = [np.frombuffer(b[0], dtype="<i8") for b in blobs]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(parts)).astype(np.int64)

    def vector_counts(self) -> tuple[int, dict[str, int]]:
        """``(last LSN, vectors per space)`` from one read snapshot (stats, readiness, check).

        Counting scans the vectors table, so the counts are kept until the LSN moves.
        """
        conn = self._reader
        conn.execute("BEGIN")
        try:
            last = int(conn.execute("SELECT COALESCE(MAX(lsn), 0) FROM oplog").fetchone()[0])
            cached = getattr(self._local, "vector_counts", None)
            if cached is not None and cached[0] == last:
                return cached  # type: ignore[no-any-return]
            rows = conn.execute("SELECT space, COUNT(*) FROM vectors GROUP BY space")
            result = (last, {r[0]: int(r[1]) for r in rows})
        finally:
            conn.execute("COMMIT")
        self._local.vector_counts = result
        return result

    def vectors(self, space: str, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(present_keys, vectors)`` for those of ``keys`` that have a vector in ``space``,
        in the order of ``keys``."""
        found: dict[int, bytes] = {}
        conn = self._reader
        for chunk, marks in _in_chunks(keys):
            rows = conn.execute(
                f"SELECT key, vector FROM vectors WHERE space = ? AND key IN ({marks})",
                (space, *chunk),
            )
            found.update(rows)
        ordered = [int(k) for k in keys if int(k) in found]
        return _to_arrays(ordered, [found[k] for k in ordered])

    def iter_vectors(
        self, space: str, batch: int = 20_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All vectors of a space in key order, batch by batch (index rebuild)."""
        last = -(2**63)
        while True:
            rows = self._reader.execute(
                "SELECT key, vector FROM vectors WHERE space = ? AND key > ? ORDER BY key LIMIT ?",
                (space, last, batch),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield _to_arrays([r[0] for r in rows], [r[1] for r in rows])

    def stale_keys(self, space: str, encoder: str, version: str) -> np.ndarray:
        rows = self._reader.execute(
            "SELECT key FROM vectors WHERE space = ? AND (encoder != ? OR version != ?)",
            (space, encoder, version),
        )
        return np.array([r[0] for r in rows], dtype=np.int64)

    def items(self, keys: list[int]) -> dict[int, dict[str, Any]]:
        """Item rows (joined with their document's source) by key."""
        out: dict[int, dict[str, Any]] = {}
        conn = self._reader
        for chunk, marks in _in_chunks(keys):
            cur = conn.execute(
                f"SELECT {ITEM_COLUMNS} FROM items i JOIN documents d ON d.doc_id = i.doc_id"
                f" WHERE i.key IN ({marks})",
                chunk,
            )
            names = [c[0] for c in cur.description]
            for row in cur:
                item = dict(zip(names, row, strict=True))
                item["metadata"] = json.loads(item["metadata"])
                out[item["key"]] = item
        return out

    def thumbnail(self, key: int) -> bytes | None:
        row = self._reader.execute("SELECT thumbnail FROM items WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise NotFoundError(f"item {key} not found")
        return row[0]  # type: ignore[no-any-return]

    def filter_keys(self, filters: Filters) -> np.ndarray:
        """Sorted keys of every item the filter allows (evaluated in SQLite)."""
        where, params = where_clause(filters)
        rows = self._reader.execute(
            f"SELECT i.key FROM items i JOIN documents d ON d.doc_id = i.doc_id WHERE {where}"
            " ORDER BY i.key",
            params,
        )
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def fulltext_rows(self, keys: np.ndarray | None = None) -> Iterator[tuple[int, str]]:
        """``(key, text)`` of the full-text rows of ``keys`` (every row when None), as FTS5
        holds them: what a derived BM25 index (``edgerag.lexical``) is built from."""
        if keys is None:
            yield from self._reader.execute("SELECT rowid, text FROM items_fts")
            return
        for chunk, marks in _in_chunks(keys):
            yield from self._reader.execute(
                f"SELECT rowid, text FROM items_fts WHERE rowid IN ({marks})", chunk
            ).fetchall()

    def bm25(self, match: str, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """Top-k ``(key, score)`` by FTS5 BM25 (score: higher is better)."""
        if not match:
            return []
        where, params = where_clause(filters)
        join = (
            ""
            if not filters
            else " JOIN items i ON i.key = f.rowid JOIN documents d ON d.doc_id = i.doc_id"
        )
        cond = "" if not filters else f" AND {where}"
        try:
            rows = self._reader.execute(
                f"SELECT f.rowid, -bm25(items_fts) AS s FROM items_fts f{join}"
                f" WHERE items_fts MATCH ?{cond} ORDER BY s DESC LIMIT ?",
                (match, *params, k),
            ).fetchall()
        except crypto.operational_errors() as exc:
            raise ConfigError(f"bad full-text query {match!r}: {exc}") from exc
        return [(int(r[0]), float(r[1])) for r in rows]

    # entity graph (edgerag.entities.graph) --------------------------------------------------
    def entity_items(self, names: list[str]) -> dict[str, list[int]]:
        """Entity name (normalised) → keys of the items naming it."""
        return entity_graph.items_of(self._reader, names)

    def entity_neighbours(self, name: str) -> list[str]:
        """Entities one hop from ``name``: named in the same table row or the same section."""
        return entity_graph.neighbours(self._reader, name)

    def entity_hits(
        self,
        query_text: str,
        k: int,
        filters: Filters | None = None,
        allowed_keys: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """Items ranked by the entities of ``query_text`` (exact, then one hop, lower).

        ``allowed_keys``: the keys ``filters`` allows, when the caller has them already.
        """
        if allowed_keys is None and filters:
            allowed_keys = self.filter_keys(filters)
        allowed = None if allowed_keys is None else {int(key) for key in allowed_keys}
        lsn = self.last_lsn()
        if self._counted[0] != lsn:
            self._counted = (lsn, sum(self.count_items().values()))
        return entity_graph.hits(self._reader, query_text, k, allowed, total=self._counted[1])

    def entity(self, name: str) -> dict[str, Any]:
        """Where entity ``name`` (any spelling: ``e107``) appears; NotFoundError if nowhere."""
        normalised = normalize_entity(name)
        found = entity_graph.report(self._reader, normalised)
        if found is None:
            raise NotFoundError(f"entity {name!r} ({normalised}) is not named in any item")
        return found

    def count_items(self) -> dict[str, int]:
        rows = self._reader.execute("SELECT modality, COUNT(*) FROM items GROUP BY modality")
        return {r[0]: r[1] for r in rows}

    def count_documents(self) -> int:
        return int(self._reader.execute("SELECT COUNT(*) FROM documents").fetchone()[0])

    def oplog(self, since: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        cur = self._reader.execute(
            "SELECT lsn, ts, kind, doc_id, content_hash, keys, origin, origin_lsn FROM oplog"
            " WHERE lsn > ? ORDER BY lsn LIMIT ?",
            (since, limit),
        )
        out = []
        for lsn, ts, kind, doc_id, chash, keys, origin, olsn in cur:
            out.append(
                {
                    "lsn": lsn,
                    "ts": ts,
                    "kind": kind,
                    "doc_id": doc_id,
                    "content_hash": chash,
                    "keys": np.frombuffer(keys, dtype="<i8").astype(np.int64),
                    "origin": origin,
                    "origin_lsn": olsn,
                }
            )
        return out

    def materialize(self, doc_id: str, ts: float | None = None) -> Op:
        """The full op that recreates ``doc_id``'s current state (or deletes it)."""
        doc = self.document(doc_id)
        if doc is None:
            return Op(kind=DELETE, doc_id=doc_id, ts=ts or time.time())
        record = DocumentRecord(
            doc_id=doc_id,
            source=doc["source"],
            modality=doc["modality"],
            mime=doc["mime"],
            content_hash=doc["content_hash"],
            size=doc["size"],
            title=doc["title"],
            metadata=doc["metadata"],
            redactions=doc["redactions"],
        )
        keys = self.doc_keys(doc_id)
        rows = self.items(keys)
        thumbnails = dict(
            self._reader.execute("SELECT key, thumbnail FROM items WHERE doc_id = ?", (doc_id,))
        )
        items = []
        for key in keys:
            r = rows[key]
            meta = {k: v for k, v in r["metadata"].items() if record.metadata.get(k) != v}
            items.append(
                ItemRecord(
                    key=key,
                    item_id=r["item_id"],
                    position=r["position"],
                    modality=r["modality"],
                    text=r["text"],
                    page=r["page"],
                    char_start=r["char_start"],
                    char_end=r["char_end"],
                    t_start=r["t_start"],
                    t_end=r["t_end"],
                    metadata=meta,
                    thumbnail=thumbnails[key],
                )
            )
        vectors = {}
        key_array = np.array(keys, dtype=np.int64)
        for name, spec in self.spaces().items():
            present, vecs = self.vectors(name, key_array)
            if len(present):
                vectors[name] = SpaceVectors(spec.encoder, spec.version, present, vecs)
        return Op(
            kind=UPSERT,
            doc_id=doc_id,
            document=record,
            items=items,
            vectors=vectors,
            ts=ts or time.time(),
            units=self.units_of(keys),
        )

    # small state kept with the data ------------------------------------------------------
    def meta(self, prefix: str) -> dict[str, str]:
        """``meta`` rows whose key starts with ``prefix`` (e.g. the fleet's applied positions,
        which must survive exactly with the store and vanish with it)."""
        rows = self._reader.execute(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
        )
        return {str(k): str(v) for k, v in rows}

    def set_meta(self, values: dict[str, str]) -> None:
        """Write ``meta`` rows in one transaction."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def file_size(self) -> int:
        page = self._reader.execute("PRAGMA page_count").fetchone()[0]
        size = self._reader.execute("PRAGMA page_size").fetchone()[0]
        return int(page) * int(size)  # SQLCipher answers PRAGMA page_size with a string


def fts_rows(conn: sqlite3.Connection) -> Iterator[tuple[int, str]]:
    """``(key, text)`` every item's FTS row must hold, derived from the items as
    :meth:`Store._put_items` derives it (item-level metadata = what differs from the
    document's, as in :meth:`Store.materialize`)."""
    rows = conn.execute(
        "SELECT i.key, i.text, i.metadata, d.metadata FROM items i"
        " JOIN documents d ON d.doc_id = i.doc_id"
    )
    for key, text, item_meta, doc_meta in rows.fetchall():
        merged, doc = json.loads(item_meta), json.loads(doc_meta)
        own = {k: v for k, v in merged.items() if doc.get(k) != v}
        yield int(key), context_text(text, own)


@contextmanager
def _creation_lock(path: Path | None) -> Iterator[None]:
    """Serialize opening + migrating among processes: two that create one collection at once
    would otherwise both see schema version 0 and both run the first migration."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / ".store.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _to_arrays(keys: list[int], blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    if not keys:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    vecs = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(keys), -1)
    return np.array(keys, dtype=np.int64), vecs.astype(np.float32)


def _in_chunks(keys: Iterable[Any]) -> Iterator[tuple[list[int], str]]:
    """``keys`` as ints in chunks of 500 for ``... IN (?, ?, …)`` (well under SQLite's bound
    parameter limit): each chunk with its placeholders."""
    wanted = [int(k) for k in keys]
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        yield chunk, ",".join("?" * len(chunk))
