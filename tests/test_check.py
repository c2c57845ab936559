"""`edgerag check`: every kind of disagreement is found, named, and (where derived) repaired."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgerag import Engine, EngineConfig, IndexConfig
from edgerag.check import check_collection
from edgerag.errors import ConfigError
from edgerag.index.space import SpaceIndex
from test_server_process import edgerag_cmd

CONFIG = EngineConfig(encoder="hash", index=IndexConfig(backend="faiss", quantization="int8"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "kb"
    with Engine.open(path, CONFIG) as engine:
        engine.ingest(
            [
                (f"doc-{i}.txt", f"unit {i} pump seal torque note number {i}".encode())
                for i in range(12)
            ]
        )
        engine.delete("doc-3.txt")
    return path


def sql(db: Path, statement: str, *args: object) -> None:
    conn = sqlite3.connect(db / "store.db")
    with conn:
        conn.execute(statement, args)
    conn.close()


def test_clean_collection_is_ok(db: Path) -> None:
    report = check_collection(db)
    assert report.ok, report.problems
    assert report.checked["index_text_vectors"] == report.checked["store_text_vectors"] == 11
    assert report.checked["vectors_compared"] == 11 and report.checked["lsn"] == 13


def test_not_a_collection(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no edgerag collection"):
        check_collection(tmp_path)


def test_lying_checkpoint_is_found_and_repaired(db: Path) -> None:
    """The issue's bug: a checkpoint claims the last LSN but misses a document's vectors."""
    with Engine.open(db) as engine:
        key = engine.store.doc_keys("doc-5.txt")
        spec = engine.indexes["text"].spec
    index = SpaceIndex.open(db / "index" / "text", spec, CONFIG.index)
    lsn = index.applied_lsn
    index.remove(np.array(key))
    index.checkpoint(lsn, force=True)
    index.close()
    report = check_collection(db)
    assert not report.ok
    assert any(
        "1 of the store's 11 vectors missing" in p and "doc-5.txt" in p for p in report.problems
    )
    repaired = check_collection(db, repair=True)
    assert repaired.ok, repaired.problems
    assert any("rebuilt" in r for r in repaired.repaired)
    assert check_collection(db).ok


def test_corrupt_checkpoint_is_reported_then_rebuilt(db: Path) -> None:
    ckpt = next((db / "index" / "text").glob("ckpt-*"))
    target = ckpt / "faiss.index"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    report = check_collection(db)
    assert any("checkpoint unusable" in p and "sha256" in p for p in report.problems)
    assert check_collection(db, repair=True).ok
    assert check_collection(db).ok


def test_fts_rows_missing_or_changed(db: Path) -> None:
    with Engine.open(db) as engine:
        keys = engine.store.doc_keys("doc-1.txt") + engine.store.doc_keys("doc-2.txt")
    sql(db, "DELETE FROM items_fts WHERE rowid = ?", keys[0])
    sql(db, "UPDATE items_fts SET text = 'something else' WHERE rowid = ?", keys[1])
    report = check_collection(db)
    assert any("1 items missing from the full-text index" in p for p in report.problems)
    assert any("1 full-text rows whose text differs" in p for p in report.problems)
    repaired = check_collection(db, repair=True)
    assert repaired.ok and any(r.startswith("fts: rebuilt") for r in repaired.repaired)


def test_vector_that_differs_from_the_store(db: Path) -> None:
    with Engine.open(db) as engine:
        key = engine.store.doc_keys("doc-7.txt")[0]
        dim = engine.indexes["text"].spec.dim
    other = np.zeros(dim, dtype="<f4")
    other[0] = 1.0
    sql(db, "UPDATE vectors SET vector = ? WHERE key = ?", other.tobytes(), key)
    report = check_collection(db)
    assert any("1 of 11 sampled vectors differ" in p and str(key) in p for p in report.problems)


def test_op_log_gap_is_reported_and_not_papered_over(db: Path) -> None:
    sql(db, "DELETE FROM oplog WHERE lsn = 4")  # doc-3's only other op is its delete (LSN 13)
    sql(db, "DELETE FROM oplog WHERE lsn = 13")
    report = check_collection(db)
    assert any("LSNs missing" in p and "4" in p for p in report.problems)
    assert any("13..13 were issued but are gone" in p for p in report.problems)
    assert not check_collection(db, repair=True).ok  # nothing truer to rebuild the log from


def test_document_whose_newest_op_deletes_it(db: Path) -> None:
    sql(db, "UPDATE oplog SET kind = 'delete' WHERE doc_id = 'doc-9.txt'")
    report = check_collection(db)
    assert any("present although their newest op deletes them" in p for p in report.problems)


def test_leftover_original_file(db: Path) -> None:
    originals = db / "originals"
    originals.mkdir()
    (originals / ("0" * 64)).write_bytes(b"text of a deleted upload")
    report = check_collection(db)
    assert any("1 files belong to no stored document" in p for p in report.problems)
    assert check_collection(db, repair=True).ok
    assert list(originals.iterdir()) == []


def test_cli_exit_codes_and_json(db: Path) -> None:
    ok = subprocess.run(edgerag_cmd("check", "--db", str(db)), capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith(f"check {db}: ok")
    sql(db, "DELETE FROM items_fts")
    bad = subprocess.run(
        edgerag_cmd("check", "--db", str(db), "--json"), capture_output=True, text=True
    )
    assert bad.returncode == 1
    body = json.loads(bad.stdout)
    assert body["ok"] is False and any("full-text" in p for p in body["problems"])
    fixed = subprocess.run(
        edgerag_cmd("check", "--db", str(db), "--repair"), capture_output=True, text=True
    )
    assert fixed.returncode == 0, fixed.stdout
    assert "repaired: fts: rebuilt 11 rows" in fixed.stdout


def test_fts_rows_with_section_paths_are_clean(tmp_path: Path) -> None:
    """FTS rows carry the section path before the text (ingest/structure.py): not a mismatch."""
    db = tmp_path / "kb"
    manual = (
        b"# Pump P-100\n\n## Seal\n\nReplace the seal when it leaks.\n\n## Bolts\n\nTorque 25 Nm.\n"
    )
    with Engine.open(db, CONFIG) as engine:
        engine.ingest([("manual.md", manual)], metadata={"site": "plant-3"})
    assert check_collection(db).ok, check_collection(db).problems
    conn = sqlite3.connect(db / "store.db")
    prefixed = conn.execute(
        "SELECT COUNT(*) FROM items_fts f JOIN items i ON i.key = f.rowid WHERE f.text != i.text"
    ).fetchone()[0]
    conn.close()
    assert prefixed > 0  # the case this test is about really occurs
    sql(db, "UPDATE items_fts SET text = 'Replace the seal when it leaks.'")
    assert not check_collection(db).ok  # the section path is part of what is checked
    assert check_collection(db, repair=True).ok


def _graph_db(tmp_path: Path) -> Path:
    db = tmp_path / "kb"
    manual = (
        b"# KX-40 manual\n\n## Alarm codes\n\n| Code | Meaning | Action |\n|---|---|---|\n"
        b"| E-107 | Seal flush pressure low | Check V-05 open |\n"
        b"| E-114 | Strainer dP high on P-2B | Clean the basket, part KX40-STR-GSK |\n"
    )
    with Engine.open(db, CONFIG) as engine:
        engine.ingest([("manual.md", manual), ("log.txt", b"E-114 again on P-2B at 23:10.")])
        engine.delete("log.txt")
    return db


def test_entity_graph_that_disagrees_with_the_items_is_found_and_rebuilt(tmp_path: Path) -> None:
    db = _graph_db(tmp_path)
    report = check_collection(db)
    assert report.ok, report.problems
    assert report.checked["entity_items"] > 0 and report.checked["entity_edges"] > 0
    sql(db, "DELETE FROM entity_items WHERE name = 'E-107'")
    sql(db, "DELETE FROM entity_edges WHERE a = 'E-114' AND b = 'P-2B' AND relation = 'row'")
    # an edge left behind by a deleted document, and an entity no item names
    sql(db, "INSERT INTO entity_edges VALUES ('E-114', 'V-05', 'section', 'log.txt')")
    sql(db, "INSERT INTO entities VALUES ('W-999', 'code')")
    problems = check_collection(db).problems
    assert any("1 entity↔item rows missing" in p and "E-107" in p for p in problems), problems
    assert any("1 entity edges missing" in p and "P-2B" in p for p in problems), problems
    assert any(
        "1 entity edges stored but not derivable" in p and "log.txt" in p for p in problems
    ), problems
    assert any("1 entities stored but not derivable" in p and "W-999" in p for p in problems)
    repaired = check_collection(db, repair=True)
    assert repaired.ok, repaired.problems
    assert any(r.startswith("entity graph: rebuilt") for r in repaired.repaired)
    with Engine.open(db) as engine:  # the rebuilt index answers exact look-ups again
        assert engine.store.entity_items(["E-107"])


def test_entity_weight_change_is_a_mismatch(tmp_path: Path) -> None:
    db = _graph_db(tmp_path)
    sql(db, "UPDATE entity_items SET weight = 7 WHERE name = 'E-114'")
    assert any("entity↔item rows" in p for p in check_collection(db).problems)
