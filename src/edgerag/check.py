"""``edgerag check``: prove that a collection's store, indexes, FTS and files agree.

The store (SQLite) is the truth; everything else is derived from it and can be rebuilt:

- **op log**: LSNs are an AUTOINCREMENT key that no code path deletes, and a rolled-back write
  rolls its sequence back too, so the log must hold every LSN from 1 to its max with no gap,
  and ``sqlite_sequence`` must not be past the max (that would mean the newest ops were
  removed). Every document's ``lsn`` is its newest op, an upsert whose keys cover its items; a
  document whose newest op is a delete must be gone.
- **store rows**: every item has its document, every vector its item; SQLite ``quick_check``.
- **indexes**: each space's checkpoint loads (checksums) and is not ahead of the log; after
  following the log the way every process does, the index holds exactly the store's keys of
  that space, and a sample of vectors is bit-exact: the index keeps the store's f32 vector
  after its own normalisation (``SpaceIndex.canonical``), so that is what is compared, byte for
  byte, against the index's f32 originals — the vectors exact scans and rescoring use. The
  ANN engine's quantized codes are lossy by design; they are checked by count (and keys where
  the engine can list them), not by value.
- **FTS**: one FTS5 row per item, same rowid, same text.
- **entity graph**: the entity index and edges are derived from the item texts; they are derived
  again, in memory, by the same code and must equal the stored tables row for row (entities,
  entity↔item rows with their weights, entity↔entity edges with their document).
- **files**: every file in ``originals/`` belongs to a stored document (a leftover of a deleted
  one is a privacy leak); image items carry a JPEG thumbnail.

``repair=True`` rebuilds what disagrees from the store: indexes (from the store's vectors),
FTS rows (from items), leftover originals (scrubbed). Store-internal damage (log gaps, orphan
rows) is reported, not "repaired": there is nothing truer to rebuild it from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgerag import crypto
from edgerag.config import EngineConfig
from edgerag.errors import ConfigError, IndexCorruptError

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE = 256
_SHOW = 5  # example keys/ids named per problem


@dataclass
class CheckReport:
    """What ``check_collection`` found: ``ok`` is True only when ``problems`` is empty."""

    path: str
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    checked: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _examples(values: Any) -> str:
    values = list(values)
    items = [str(v) for v in values[:_SHOW]]
    return ", ".join(items) + (", …" if len(values) > _SHOW else "")


def check_collection(
    path: str | Path, repair: bool = False, sample: int = DEFAULT_SAMPLE
) -> CheckReport:
    """Check the collection at ``path``; with ``repair``, rebuild what disagrees, then re-check.

    Raises:
        ConfigError: ``path`` holds no collection.
    """
    directory = Path(path)
    if not (directory / "store.db").is_file():
        raise ConfigError(f"{directory}: no edgerag collection here (no store.db)")
    report = CheckReport(str(directory))
    _run(directory, report, repair, sample)
    if repair and report.repaired:
        again = CheckReport(str(directory))
        _run(directory, again, False, sample)
        report.problems, report.checked = again.problems, again.checked
    return report


def _run(directory: Path, report: CheckReport, repair: bool, sample: int) -> None:
    store_file = directory / "store.db"
    key = crypto.require_key(directory, None) if crypto.collection_encrypted(directory) else None
    conn = crypto.open_store_connection(f"file:{store_file}?mode=ro", key)
    conn.execute("PRAGMA busy_timeout = 10000")
    try:
        conn.execute("BEGIN")  # one snapshot for every store-side comparison
        _check_store(conn, report)
        _check_oplog(conn, report)
        fts_bad = _check_fts(conn, report)
        graph_bad = _check_entities(conn, report)
        units_bad = _check_unit_vectors(conn, report)
        stray_originals = _check_files(conn, directory, report)
        conn.execute("COMMIT")
    finally:
        conn.close()
    if repair and (fts_bad or stray_originals):
        _repair_store_side(directory, report, fts_bad, stray_originals)
    if repair and graph_bad:
        _repair_entities(directory, report)
    if repair and units_bad is not None:
        _repair_unit_vectors(directory, report, units_bad)
    _check_indexes(directory, report, repair, sample)


# ------------------------------------------------------------------ store and op log


def _check_store(conn: sqlite3.Connection, report: CheckReport) -> None:
    status = conn.execute("PRAGMA quick_check").fetchall()
    if status != [("ok",)]:
        report.problems.append(f"store.db: SQLite quick_check: {'; '.join(r[0] for r in status)}")
    orphans = [
        r[0]
        for r in conn.execute(
            "SELECT i.key FROM items i LEFT JOIN documents d ON d.doc_id = i.doc_id"
            " WHERE d.doc_id IS NULL"
        )
    ]
    if orphans:
        report.problems.append(
            f"store: {len(orphans)} items without a document (keys {_examples(orphans)})"
        )
    loose = [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT v.space, v.key FROM vectors v LEFT JOIN items i ON i.key = v.key"
            " WHERE i.key IS NULL"
        )
    ]
    if loose:
        report.problems.append(f"store: {len(loose)} vectors without an item ({_examples(loose)})")
    report.checked["documents"] = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    report.checked["items"] = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]


def _check_oplog(conn: sqlite3.Connection, report: CheckReport) -> None:
    first, last, count = conn.execute("SELECT MIN(lsn), MAX(lsn), COUNT(*) FROM oplog").fetchone()
    last = last or 0
    report.checked["lsn"] = last
    if count and (first != 1 or last - first + 1 != count):
        gaps = [
            r[0]
            for r in conn.execute(
                "SELECT lsn + 1 FROM oplog o WHERE lsn < ? AND NOT EXISTS"
                " (SELECT 1 FROM oplog p WHERE p.lsn = o.lsn + 1) LIMIT 10",
                (last,),
            )
        ]
        if first != 1:
            gaps.insert(0, f"1..{first - 1}")
        report.problems.append(
            f"op log: {last - count} LSNs missing between 1 and {last} (first gaps at "
            f"{_examples(gaps)})"
        )
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'oplog'").fetchone()
    if row and row[0] > last:
        report.problems.append(
            f"op log: LSNs {last + 1}..{row[0]} were issued but are gone from the log"
        )
    newest = dict(conn.execute("SELECT doc_id, MAX(lsn) FROM oplog GROUP BY doc_id").fetchall())
    stale, no_op, wrong_keys = [], [], []
    for doc_id, lsn in conn.execute("SELECT doc_id, lsn FROM documents"):
        top = newest.get(doc_id)
        if top is None:
            no_op.append(doc_id)
            continue
        if lsn != top:
            stale.append(f"{doc_id} (document LSN {lsn}, newest op {top})")
            continue
        kind, blob = conn.execute("SELECT kind, keys FROM oplog WHERE lsn = ?", (top,)).fetchone()
        keys = set(np.frombuffer(blob, dtype="<i8").tolist())
        items = {r[0] for r in conn.execute("SELECT key FROM items WHERE doc_id = ?", (doc_id,))}
        if kind != "upsert" or not items <= keys:
            wrong_keys.append(
                f"{doc_id} (op {top} is {kind!r}, covers {len(items & keys)}/{len(items)} items)"
            )
    documents = {r[0] for r in conn.execute("SELECT doc_id FROM documents")}
    deleted_but_present = [
        r[0]
        for r in conn.execute(
            "SELECT o.doc_id FROM oplog o WHERE o.lsn = (SELECT MAX(lsn) FROM oplog p"
            " WHERE p.doc_id = o.doc_id) AND o.kind = 'delete'"
        )
        if r[0] in documents
    ]
    upserted_but_gone = [
        r[0]
        for r in conn.execute(
            "SELECT o.doc_id FROM oplog o WHERE o.lsn = (SELECT MAX(lsn) FROM oplog p"
            " WHERE p.doc_id = o.doc_id) AND o.kind = 'upsert'"
        )
        if r[0] not in documents
    ]
    for label, bad in (
        ("documents with no op in the log", no_op),
        ("documents whose LSN is not their newest op", stale),
        ("documents whose newest op does not cover their items", wrong_keys),
        ("documents present although their newest op deletes them", deleted_but_present),
        ("documents missing although their newest op upserts them", upserted_but_gone),
    ):
        if bad:
            report.problems.append(f"op log: {len(bad)} {label}: {_examples(bad)}")


# ------------------------------------------------------------------ FTS and files


def _check_fts(conn: sqlite3.Connection, report: CheckReport) -> bool:
    from edgerag.store.sqlite import fts_rows

    # an item's FTS row is its text, prefixed by its section path (see ingest/structure.py)
    items = dict(fts_rows(conn))
    fts = dict(conn.execute("SELECT rowid, text FROM items_fts").fetchall())
    report.checked["fts_rows"] = len(fts)
    missing = sorted(set(items) - set(fts))
    extra = sorted(set(fts) - set(items))
    differ = sorted(k for k in set(items) & set(fts) if items[k] != fts[k])
    for label, keys in (
        ("items missing from the full-text index", missing),
        ("full-text rows without an item", extra),
        ("full-text rows whose text differs from the item", differ),
    ):
        if keys:
            report.problems.append(f"fts: {len(keys)} {label} (keys {_examples(keys)})")
    return bool(missing or extra or differ)


_GRAPH_TABLES = {
    "entities": ("entities", "SELECT name, kind FROM entities"),
    "entity_items": ("entity↔item rows", "SELECT name, key, weight FROM entity_items"),
    "entity_edges": ("entity edges", "SELECT a, b, relation, doc_id FROM entity_edges"),
}


def _check_entities(conn: sqlite3.Connection, report: CheckReport) -> bool:
    """Derive the graph again from the items (in memory) and compare it with the stored one."""
    from edgerag.entities import graph

    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    pending = (
        "meta" in tables
        and conn.execute("SELECT 1 FROM meta WHERE key = 'entities_backfill'").fetchone()
    )
    if not set(_GRAPH_TABLES) <= tables or pending:
        report.checked["entity_graph"] = "not built yet (built when the collection is opened)"
        return False
    derived = sqlite3.connect(":memory:")
    try:
        for name in _GRAPH_TABLES:
            sql = conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()[0]
            derived.execute(sql)
        graph.backfill(derived, source=conn)
        bad = False
        for name, (label, query) in _GRAPH_TABLES.items():
            stored = set(conn.execute(query).fetchall())
            expected = set(derived.execute(query).fetchall())
            report.checked[name] = len(stored)
            for what, rows in (
                (f"{label} missing (the items name them)", expected - stored),
                (f"{label} stored but not derivable from the items", stored - expected),
            ):
                if rows:
                    bad = True
                    report.problems.append(
                        f"entity graph: {len(rows)} {what} ({_examples(sorted(rows, key=str))})"
                    )
        return bad
    finally:
        derived.close()


def _repair_entities(directory: Path, report: CheckReport) -> None:
    from edgerag.entities import graph

    conn = sqlite3.connect(directory / "store.db", isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for name in _GRAPH_TABLES:
                conn.execute(f"DELETE FROM {name}")
            done = graph.backfill(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    report.repaired.append(f"entity graph: rebuilt from the items of {done} documents")


def _check_unit_vectors(conn: sqlite3.Connection, report: CheckReport) -> list[str] | None:
    """Every text/audio item's units have a stored vector of the text encoder whose checksum
    is the unit's; no vector is left without its unit. Returns the documents to recompute
    (``None``: nothing to repair).

    A collection ingested before unit vectors (or with ``unit_vectors="off"``) has none at all:
    that is reported in ``checked``, not as damage (the composer encodes those units)."""
    from edgerag.generation.unit_vectors import checksum
    from edgerag.generation.units import units_of_item

    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    space = conn.execute("SELECT encoder, version FROM spaces WHERE name = 'text'").fetchone()
    if "unit_vectors" not in tables or space is None:
        return None
    stored = {
        (k, p): (c, (e, v) == tuple(space))
        for k, p, c, e, v in conn.execute(
            "SELECT key, position, checksum, encoder, version FROM unit_vectors"
        )
    }
    expected: dict[tuple[int, int], tuple[int, str]] = {}
    for key, doc, text, meta, start, page in conn.execute(
        "SELECT key, doc_id, text, metadata, char_start, page FROM items"
        " WHERE modality IN ('text', 'audio')"
    ):
        for unit in units_of_item(text, json.loads(meta), start, page):
            expected[(key, unit.position)] = (checksum(unit.text), doc)
    report.checked["unit_vectors"] = len(stored)
    if not stored:
        report.checked["unit_vectors"] = "none stored (computed at query time; --repair computes)"
        return sorted({doc for _, doc in expected.values()}) if expected else None
    wrong = [kp for kp, (check, _) in expected.items() if stored.get(kp, (None,))[0] != check]
    stale = [kp for kp, (_, current) in stored.items() if not current and kp in expected]
    loose = [kp for kp in stored if kp not in expected]
    for label, rows in (
        ("missing or not their unit's (checksum)", wrong),
        ("from another encoder than the text space's", stale),
        ("without a unit", loose),
    ):
        if rows:
            report.problems.append(f"unit vectors: {len(rows)} {label} ({_examples(rows)})")
    if not (wrong or stale or loose):
        return None
    return sorted({expected[kp][1] for kp in [*wrong, *stale]})


def _repair_unit_vectors(directory: Path, report: CheckReport, docs: list[str]) -> None:
    """Recompute the documents' unit vectors with the collection's encoder (derived data, like
    the entity graph: written without an op)."""
    from edgerag.engine import Engine
    from edgerag.generation.unit_vectors import encode_items
    from edgerag.ingest.structure import context_text

    with Engine.open(directory) as engine:
        mode = engine.config.unit_vectors if engine.config.unit_vectors != "off" else "late"
        pruned = engine.store.prune_units()
        for doc in docs:
            items = engine.store.materialize(doc).items
            embedded = [context_text(it.text, it.metadata) for it in items]
            _, units = encode_items(engine.encoder, items, embedded, mode)
            if units is not None:
                engine.store.put_units(units)
    report.repaired.append(
        f"unit vectors: recomputed for {len(docs)} documents ({mode}), {pruned} without a unit"
        " dropped"
    )


def _check_files(conn: sqlite3.Connection, directory: Path, report: CheckReport) -> list[Path]:
    stray: list[Path] = []
    originals = directory / "originals"
    if originals.is_dir():
        names = {
            hashlib.sha256(r[0].encode()).hexdigest()
            for r in conn.execute("SELECT doc_id FROM documents")
        }
        stray = sorted(p for p in originals.iterdir() if p.name not in names)
        report.checked["original_files"] = sum(1 for _ in originals.iterdir())
        if stray:
            report.problems.append(
                f"originals: {len(stray)} files belong to no stored document "
                f"({_examples(p.name for p in stray)})"
            )
    bad_thumbs = [
        r[0]
        for r in conn.execute(
            "SELECT key FROM items WHERE modality = 'image' AND (thumbnail IS NULL"
            " OR substr(thumbnail, 1, 2) != x'ffd8')"
        )
    ]
    if bad_thumbs:
        report.problems.append(
            f"thumbnails: {len(bad_thumbs)} image items without a JPEG thumbnail "
            f"(keys {_examples(bad_thumbs)})"
        )
    return stray


def _repair_store_side(
    directory: Path, report: CheckReport, fts_bad: bool, stray: list[Path]
) -> None:
    from edgerag.store.sqlite import Store

    if fts_bad:
        store = Store(directory / "store.db")
        try:
            n = store.rebuild_fts()
        finally:
            store.close()
        report.repaired.append(f"fts: rebuilt {n} rows from the items")
    if stray:
        for path in stray:
            if path.suffix == ".tmp":
                path.unlink(missing_ok=True)
                continue
            # scrub like a delete does: the bytes belong to a document that is gone
            size = path.stat().st_size
            with open(path, "r+b") as fh:
                fh.write(b"\0" * size)
            path.unlink()
        report.repaired.append(f"originals: removed {len(stray)} leftover files")


# ------------------------------------------------------------------ indexes


def _probe_checkpoints(directory: Path, config: EngineConfig, report: CheckReport) -> list[str]:
    """Open each space's checkpoint as a process would; name the ones that are unusable."""
    from edgerag.index.space import SpaceIndex
    from edgerag.store.sqlite import Store

    store = Store(directory / "store.db")
    try:
        spaces, last = store.spaces(), store.last_lsn()
    finally:
        store.close()
    bad = []
    for name, spec in spaces.items():
        index_dir = directory / "index" / name
        try:
            index = SpaceIndex.open(index_dir, spec, config.index)
        except IndexCorruptError as exc:
            report.problems.append(f"index {name}: checkpoint unusable: {exc}")
            bad.append(name)
            continue
        try:
            if index.applied_lsn > last:
                report.problems.append(
                    f"index {name}: checkpoint at LSN {index.applied_lsn} is ahead of the op log "
                    f"({last})"
                )
                bad.append(name)
        finally:
            index.close()
    return bad


def _check_indexes(directory: Path, report: CheckReport, repair: bool, sample: int) -> None:
    from edgerag.engine import Engine

    config_file = directory / "config.json"
    config = EngineConfig.load(config_file) if config_file.exists() else EngineConfig()
    bad = _probe_checkpoints(directory, config, report)
    if bad and not repair:
        report.problems.append(
            f"indexes {bad} not compared with the store (run with --repair to rebuild them)"
        )
        return
    # The engine opens, rebuilds unusable checkpoints and follows the op log exactly as every
    # process does: what is compared below is what a search in any process would use.
    with Engine.open(directory, config) as engine:
        if bad:
            report.repaired.append(f"indexes {bad}: rebuilt from the store")
        mismatched = _compare_indexes(engine, report, sample)
        if repair and mismatched:
            for name in mismatched:
                engine.rebuild_index(name)
            engine.checkpoint()
            report.repaired.append(f"indexes {mismatched}: rebuilt from the store")


def _compare_indexes(engine: Any, report: CheckReport, sample: int, attempts: int = 5) -> list[str]:
    mismatched = []
    rng = np.random.default_rng(0)
    with engine._write_lock:  # hold this process's indexes still while comparing
        for _ in range(attempts):
            # Other processes may write meanwhile: compare only at a store snapshot whose LSN
            # is exactly what the indexes applied.
            last = engine._follow_locked()
            store_last, spaces, per_space = _store_keys(engine.store)
            if store_last == last:
                break
        else:
            report.problems.append(
                f"indexes: the op log kept moving (LSN {store_last}, indexes at {last}); "
                "compared anyway, run check again when writes stop"
            )
        report.checked["vectors_compared"] = 0
        for name in spaces:
            index = engine.indexes.get(name)
            if index is None:
                report.problems.append(f"index {name}: the store has the space, no index opened")
                mismatched.append(name)
                continue
            if not _compare_space(engine, name, index, per_space[name], report, sample, rng):
                mismatched.append(name)
    return mismatched


def _store_keys(store: Any) -> tuple[int, dict[str, Any], dict[str, np.ndarray]]:
    """(last LSN, spaces, sorted vector keys per space) from one read snapshot."""
    conn = store._reader
    conn.execute("BEGIN")
    try:
        last = int(conn.execute("SELECT COALESCE(MAX(lsn), 0) FROM oplog").fetchone()[0])
        spaces = store.spaces()
        keys = {
            name: np.fromiter(
                (r[0] for r in conn.execute("SELECT key FROM vectors WHERE space = ?", (name,))),
                dtype=np.int64,
            )
            for name in spaces
        }
    finally:
        conn.execute("COMMIT")
    return last, spaces, {name: np.sort(k) for name, k in keys.items()}


def _compare_space(
    engine: Any,
    name: str,
    index: Any,
    store_keys: np.ndarray,
    report: CheckReport,
    sample: int,
    rng: np.random.Generator,
) -> bool:
    ok = True
    index_keys = index.keys()
    missing = np.setdiff1d(store_keys, index_keys)
    extra = np.setdiff1d(index_keys, store_keys)
    report.checked[f"index_{name}_vectors"] = len(index_keys)
    report.checked[f"store_{name}_vectors"] = len(store_keys)
    if len(missing):
        docs = sorted({r["doc_id"] for r in engine.store.items(missing[:200].tolist()).values()})
        report.problems.append(
            f"index {name}: {len(missing)} of the store's {len(store_keys)} vectors missing "
            f"(keys {_examples(missing.tolist())}; documents {_examples(docs)})"
        )
        ok = False
    if len(extra):
        report.problems.append(
            f"index {name}: {len(extra)} vectors the store does not have "
            f"(keys {_examples(extra.tolist())})"
        )
        ok = False
    engine_count = index.engine_count()
    if engine_count != len(index_keys):
        report.problems.append(
            f"index {name}: ANN engine holds {engine_count} vectors, originals {len(index_keys)}"
        )
        ok = False
    both = np.intersect1d(store_keys, index_keys)
    if len(both) == 0:
        return ok
    picked = rng.choice(both, size=min(sample, len(both)), replace=False)
    present, stored = engine.store.vectors(name, picked)
    want = index.canonical(stored)
    have = np.ascontiguousarray(index.get_vectors(present), dtype=np.float32)
    differ = [
        int(k) for k, a, b in zip(present, want, have, strict=True) if a.tobytes() != b.tobytes()
    ]
    report.checked["vectors_compared"] += len(present)
    if differ:
        report.problems.append(
            f"index {name}: {len(differ)} of {len(present)} sampled vectors differ from the "
            f"store (keys {_examples(differ)})"
        )
        ok = False
    return ok


def format_report(report: CheckReport) -> str:
    """Human-readable lines for the CLI."""
    lines = [f"check {report.path}: {'ok' if report.ok else f'{len(report.problems)} problems'}"]
    lines += [f"  checked {k}: {v}" for k, v in report.checked.items()]
    lines += [f"  repaired: {r}" for r in report.repaired]
    lines += [f"  PROBLEM: {p}" for p in report.problems]
    return "\n".join(lines)


def report_json(report: CheckReport) -> str:
    return json.dumps(report.to_dict())
