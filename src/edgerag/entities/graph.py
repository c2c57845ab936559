"""The entity graph in SQLite: which items name an entity, and which entities go together.

Tables (schema migration 2):

* ``entities(name, kind)`` — one row per normalised entity name.
* ``entity_items(name, key, weight)`` — the exact index FTS5 cannot be (it splits
  ``E-107``); ``weight`` is :data:`KEY_CELL_WEIGHT` when the entity is the key (first) cell of
  a table row — the row that *defines* E-107 outranks rows that merely mention it.
* ``entity_edges(a, b, relation, doc_id)`` — both directions of: ``row`` (named in one table
  row), ``section`` (named in one section of one document).

Everything is derived from the item texts inside the store's write transaction
(:func:`index_document` / :func:`unindex_document`), deterministically, so replicas applying
the same ops hold the same graph, and deleting a document removes its edges atomically.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

from edgerag.entities import Entity, extract

# Kinds that identify one thing; values ("1 m", "24 h") are shared by unrelated items, so they
# are indexed for exact lookup but never link sections or serve as a hop.
IDENTIFIER_KINDS = frozenset({"code", "part", "tag", "model", "serial", "standard"})
SECTION_EDGE_MAX = 30  # a section naming more identifiers than this is a list, not a context
HOP_WEIGHT = 0.3  # a neighbour's items score this share of a direct match, at most
KEY_CELL_WEIGHT = 2.0
HOP_MAX_ITEMS = 50
MAX_KEYS_PER_ENTITY = 5000  # neighbours named by more items than this are hubs: no hop through them
MAX_ID_WORD = 64  # longer "words" are not identifiers
_ID_TOKEN = re.compile(r"[\w.]*\d[\w.]*(?:-[\w.]+)+|[A-Za-z]+-?\d+[\w-]*")


def index_document(conn: sqlite3.Connection, doc_id: str, items: Iterable[Any]) -> None:
    """Index the entities of ``items`` (ItemRecords of one document) and link them."""
    sections: dict[str, set[str]] = {}
    edges: set[tuple[str, str, str]] = set()
    for item in items:
        found = [e for e in extract(item.text or "") if e.name]
        if not found:
            continue
        key_cell = item.text.split(" · ", 1)[0] if item.metadata.get("unit") == "row" else ""
        _put_entities(conn, item.key, found, key_cell)
        ids = sorted({e.name for e in found if e.kind in IDENTIFIER_KINDS})
        if item.metadata.get("unit") == "row":
            names = sorted({e.name for e in found})
            edges.update((a, b, "row") for a, b in combinations(names, 2))
        # Plain text has no sections: there the item itself is the context.
        section = item.metadata.get("section")
        context = section if isinstance(section, str) and section else f"item {item.key}"
        sections.setdefault(context, set()).update(ids)
    for names in sections.values():
        if len(names) <= SECTION_EDGE_MAX:
            edges.update((a, b, "section") for a, b in combinations(sorted(names), 2))
    conn.executemany(
        "INSERT OR IGNORE INTO entity_edges (a, b, relation, doc_id) VALUES (?, ?, ?, ?)",
        [(a, b, rel, doc_id) for a, b, rel in edges] + [(b, a, rel, doc_id) for a, b, rel in edges],
    )


def _put_entities(
    conn: sqlite3.Connection, key: int, found: Sequence[Entity], key_cell: str
) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO entities (name, kind) VALUES (?, ?)",
        [(e.name, e.kind) for e in found],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO entity_items (name, key, weight) VALUES (?, ?, ?)",
        [(e.name, key, KEY_CELL_WEIGHT if e.surface in key_cell else 1.0) for e in found],
    )


def unindex_document(conn: sqlite3.Connection, doc_id: str, keys: Iterable[int]) -> None:
    """Remove the entity rows of ``keys`` and every edge of ``doc_id``; drop orphan entities."""
    keys = list(keys)
    names: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        names.update(
            r[0]
            for r in conn.execute(f"SELECT name FROM entity_items WHERE key IN ({marks})", chunk)
        )
        conn.execute(f"DELETE FROM entity_items WHERE key IN ({marks})", chunk)
    conn.execute("DELETE FROM entity_edges WHERE doc_id = ?", (doc_id,))
    conn.executemany(
        "DELETE FROM entities WHERE name = ?"
        " AND NOT EXISTS (SELECT 1 FROM entity_items WHERE entity_items.name = entities.name)",
        [(n,) for n in sorted(names)],
    )


# reads ---------------------------------------------------------------------------------------
def items_of(conn: sqlite3.Connection, names: Sequence[str]) -> dict[str, list[int]]:
    """Entity name → keys of the items naming it (names absent from the store are left out)."""
    out: dict[str, list[int]] = {}
    for name in names:
        keys = [r[0] for r in conn.execute("SELECT key FROM entity_items WHERE name = ?", (name,))]
        if keys:
            out[name] = sorted(keys)
    return out


def neighbours(conn: sqlite3.Connection, name: str) -> list[str]:
    """Entities one hop from ``name`` (same row or same section), most-linked first."""
    rows = conn.execute(
        "SELECT b, COUNT(*) AS n FROM entity_edges WHERE a = ? GROUP BY b ORDER BY n DESC, b",
        (name,),
    )
    return [r[0] for r in rows]


def kind_of(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT kind FROM entities WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


def query_entities(text: str) -> list[Entity]:
    """Entities of a query, also when typed in lower case (``kx40-cpl-140e``, ``p-2b``)."""
    found = {e.name: e for e in extract(text)}
    # Per whitespace word, and only words of identifier length: _ID_TOKEN backtracks
    # polynomially on a long run of word characters (a pasted hash or garbage query).
    words = (w for w in text.split() if len(w) <= MAX_ID_WORD)
    for token in (t for w in words for t in _ID_TOKEN.findall(w)):
        for entity in extract(token.upper()):
            if entity.kind in IDENTIFIER_KINDS and entity.name not in found:
                found[entity.name] = entity
    return list(found.values())


def hits(
    conn: sqlite3.Connection,
    query_text: str,
    k: int,
    allowed: set[int] | None = None,
    total: int | None = None,
) -> list[tuple[int, float]]:
    """Items ranked by the query's entities: IDF-weighted exact matches, then one hop.

    An item naming several of the query's entities ranks above one naming a single one; rarer
    entities weigh more. When the exact matches are fewer than ``k``, the items of the
    query entities' graph neighbours follow, each scored below every direct match.
    """
    entities = query_entities(query_text)
    if not entities:
        return []
    total = _item_count(conn) if total is None else total
    scores: dict[int, float] = {}
    for entity in entities:
        weighted = _weighted_keys(conn, entity.name, allowed)
        idf = _idf(total, len(weighted))
        for key, weight in weighted:
            scores[key] = scores.get(key, 0.0) + idf * weight
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) >= k:
        return ranked[:k]
    floor = min((s for _, s in ranked), default=1.0)
    hop: dict[int, float] = {}
    for entity in entities:
        if entity.kind not in IDENTIFIER_KINDS:
            continue
        for name in neighbours(conn, entity.name):
            if kind_of(conn, name) not in IDENTIFIER_KINDS:
                continue
            keys = _keys(conn, name, allowed)
            if not keys or len(keys) > HOP_MAX_ITEMS:
                continue
            weight = HOP_WEIGHT * floor * _idf(total, len(keys)) / _idf(total, 1)
            for key in keys:
                if key not in scores:
                    hop[key] = hop.get(key, 0.0) + weight
    # Several neighbours may add up: still keep every hop below the weakest direct match.
    cap = 0.9 * floor
    capped = [(key, min(s, cap)) for key, s in hop.items()]
    ranked += sorted(capped, key=lambda kv: (-kv[1], kv[0]))
    return ranked[:k]


def _weighted_keys(
    conn: sqlite3.Connection, name: str, allowed: set[int] | None
) -> list[tuple[int, float]]:
    # A hub (an entity in thousands of items) is capped: key cells first, then by key.
    rows = conn.execute(
        "SELECT key, weight FROM entity_items WHERE name = ? ORDER BY weight DESC, key LIMIT ?",
        (name, MAX_KEYS_PER_ENTITY),
    )
    return [(k, w) for k, w in rows if allowed is None or k in allowed]


def _keys(conn: sqlite3.Connection, name: str, allowed: set[int] | None) -> list[int]:
    keys = [r[0] for r in conn.execute("SELECT key FROM entity_items WHERE name = ?", (name,))]
    return keys if allowed is None else [key for key in keys if key in allowed]


def _item_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])


def _idf(total: int, df: int) -> float:
    return math.log(1.0 + total / max(1, df))


def report(conn: sqlite3.Connection, name: str, limit: int = 50) -> dict[str, Any] | None:
    """Where an entity appears: its documents, items (with section and page) and neighbours.

    Returns None when the store has no entity of that name.
    """
    kind = kind_of(conn, name)
    if kind is None:
        return None
    rows = conn.execute(
        "SELECT i.key, i.item_id, i.doc_id, i.page, i.text, i.metadata, d.source, d.title"
        " FROM entity_items e JOIN items i ON i.key = e.key"
        " JOIN documents d ON d.doc_id = i.doc_id"
        " WHERE e.name = ? ORDER BY d.source, i.position LIMIT ?",
        (name, limit),
    ).fetchall()
    documents: dict[str, dict[str, Any]] = {}
    for key, item_id, doc_id, page, text, metadata, source, title in rows:
        meta = json.loads(metadata)
        doc = documents.setdefault(
            doc_id, {"doc_id": doc_id, "source": source, "title": title, "items": []}
        )
        doc["items"].append(
            {
                "key": key,
                "id": item_id,
                "page": page,
                "section": meta.get("section"),
                "unit": meta.get("unit"),
                "text": text,
            }
        )
    edges = conn.execute(
        "SELECT e.b, n.kind, GROUP_CONCAT(DISTINCT e.relation), COUNT(*) AS c"
        " FROM entity_edges e JOIN entities n ON n.name = e.b WHERE e.a = ?"
        " GROUP BY e.b ORDER BY c DESC, e.b LIMIT ?",
        (name, limit),
    ).fetchall()
    count = conn.execute("SELECT COUNT(*) FROM entity_items WHERE name = ?", (name,)).fetchone()
    return {
        "name": name,
        "kind": kind,
        "items": int(count[0]),
        "documents": list(documents.values()),
        "neighbours": [
            {"name": b, "kind": k, "relations": sorted(rel.split(",")), "edges": c}
            for b, k, rel, c in edges
        ],
    }


def backfill(conn: sqlite3.Connection, source: sqlite3.Connection | None = None) -> int:
    """Index the items of a store that predates the graph (schema 1); returns documents done.

    With ``source``, the items are read there and the graph written to ``conn`` (``edgerag
    check`` derives the graph into a scratch database to compare it with the stored one).
    """
    source = conn if source is None else source
    docs = [r[0] for r in source.execute("SELECT doc_id FROM documents ORDER BY doc_id")]
    for doc_id in docs:
        rows = source.execute(
            "SELECT key, text, metadata FROM items WHERE doc_id = ? ORDER BY position", (doc_id,)
        )
        items = [_Row(key, text, json.loads(meta)) for key, text, meta in rows]
        unindex_document(conn, doc_id, [it.key for it in items])
        index_document(conn, doc_id, items)
    return len(docs)


class _Row:
    """The three fields of an item :func:`index_document` reads."""

    def __init__(self, key: int, text: str, metadata: dict[str, Any]) -> None:
        self.key, self.text, self.metadata = key, text, metadata
