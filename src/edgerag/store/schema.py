"""Numbered schema migrations; ``meta.schema_version`` says how far a store has come."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: documents, items, vectors, FTS5, op log
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE spaces (
        name TEXT PRIMARY KEY, encoder TEXT NOT NULL, version TEXT NOT NULL,
        dim INTEGER NOT NULL, metric TEXT NOT NULL
    );
    CREATE TABLE documents (
        doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, modality TEXT NOT NULL,
        mime TEXT NOT NULL, content_hash TEXT NOT NULL, size INTEGER NOT NULL,
        title TEXT, metadata TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL, updated REAL NOT NULL, lsn INTEGER NOT NULL
    );
    CREATE INDEX documents_source ON documents(source);
    CREATE TABLE items (
        key INTEGER PRIMARY KEY, item_id TEXT NOT NULL UNIQUE,
        doc_id TEXT NOT NULL REFERENCES documents(doc_id),
        position INTEGER NOT NULL, modality TEXT NOT NULL, text TEXT NOT NULL,
        page INTEGER, char_start INTEGER, char_end INTEGER, t_start REAL, t_end REAL,
        metadata TEXT NOT NULL DEFAULT '{}', thumbnail BLOB
    );
    CREATE INDEX items_doc ON items(doc_id, position);
    CREATE INDEX items_modality ON items(modality);
    CREATE TABLE vectors (
        space TEXT NOT NULL, key INTEGER NOT NULL, encoder TEXT NOT NULL,
        version TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (space, key)
    ) WITHOUT ROWID;
    CREATE VIRTUAL TABLE items_fts USING fts5(text, tokenize = 'porter unicode61');
    CREATE TABLE oplog (
        lsn INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL,
        doc_id TEXT NOT NULL, content_hash TEXT, keys BLOB NOT NULL,
        origin TEXT NOT NULL DEFAULT '', origin_lsn INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX oplog_doc ON oplog(doc_id);
    """,
    # 2: the entity graph (edgerag.entities.graph): exact entity index + co-occurrence edges.
    # Stores from migration 1 are backfilled from their item texts on open.
    """
    CREATE TABLE entities (name TEXT PRIMARY KEY, kind TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE entity_items (
        name TEXT NOT NULL, key INTEGER NOT NULL, weight REAL NOT NULL DEFAULT 1,
        PRIMARY KEY (name, key)
    ) WITHOUT ROWID;
    CREATE INDEX entity_items_key ON entity_items(key);
    CREATE TABLE entity_edges (
        a TEXT NOT NULL, b TEXT NOT NULL, relation TEXT NOT NULL, doc_id TEXT NOT NULL,
        PRIMARY KEY (a, b, relation, doc_id)
    ) WITHOUT ROWID;
    CREATE INDEX entity_edges_doc ON entity_edges(doc_id);
    INSERT OR REPLACE INTO meta VALUES ('entities_backfill', 'pending');
    """,
    # 3: privacy (edgerag.privacy): per-document PII redaction counts, and erasure records that
    # outlive the documents they prove deleted (keyed by sha256 of the doc id, never the id).
    """
    ALTER TABLE documents ADD COLUMN redactions TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE erasures (
        doc_hash TEXT NOT NULL, lsn INTEGER NOT NULL, ts REAL NOT NULL,
        items INTEGER NOT NULL, vectors INTEGER NOT NULL,
        origin TEXT NOT NULL DEFAULT '', origin_lsn INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (doc_hash, lsn)
    ) WITHOUT ROWID;
    """,
    # 4: answer-unit vectors (edgerag.generation.unit_vectors): int8 + scale per (item, unit),
    # with the unit text's checksum; written and deleted with their item.
    """
    CREATE TABLE unit_vectors (
        key INTEGER NOT NULL, position INTEGER NOT NULL, checksum INTEGER NOT NULL,
        encoder TEXT NOT NULL, version TEXT NOT NULL, scale REAL NOT NULL,
        vector BLOB NOT NULL, PRIMARY KEY (key, position)
    ) WITHOUT ROWID;
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations in one transaction each; return the schema version."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row else 0
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        script = script.replace("CREATE TABLE meta ", "CREATE TABLE IF NOT EXISTS meta ")
        conn.executescript(
            f"BEGIN; {script}; INSERT OR REPLACE INTO meta VALUES "
            f"('schema_version', '{number}'); COMMIT;"
        )
        version = number
    return version
