"""Provable erasure: after a delete, no byte of the document's text, vectors or original is
left anywhere in the collection directory, and an erasure record (doc id hash, time, LSN)
outlives it. Real SQLite, real faiss/usearch index files, the real HTTP app and CLI."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bytescan import find_fragments
from edgerag import Engine, EngineConfig, IndexConfig
from edgerag.privacy.erasure import doc_hash

EDGERAG = shutil.which("edgerag", path=str(Path(sys.executable).parent)) or "edgerag"
SECRET_WORDS = ["quillonbrack", "zephyrmontis", "vorstakelung"]
SECRET = (
    "Handover note. Quillonbrack Zephyrmontis signed the Vorstakelung permit for pump P-2A. " * 3
    + "Torque the gland bolts to 28 N.m and reset alarm E-107 after the seal change. " * 40
)
OTHER = "Alarm E-119 means bearing lubrication is due; regrease DE 10 strokes. " * 30
# Many other documents: the deleted one is a small fraction of every file (no compaction by
# the usual dead-row threshold hides a leftover).
MANY = [
    (
        f"other-{i}.txt",
        (f"Note {i}: pump {i} seal check, bearing {i} grease, valve {i}. " * 12).encode(),
    )
    for i in range(40)
]
FAST = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))


def _text_needles() -> list[bytes]:
    """The document's words as written and lowercased (as FTS5 keeps its terms)."""
    return [w.encode() for w in SECRET_WORDS] + [w.capitalize().encode() for w in SECRET_WORDS]


def _vector_needles(engine: Engine, doc_id: str) -> list[bytes]:
    """The leading 64 bytes of each of the document's vectors (float32, as store and index
    files hold them)."""
    keys = np.array(engine.store.doc_keys(doc_id), dtype=np.int64)
    assert len(keys) > 1, "the document should span several chunks"
    needles = []
    for space, index in engine.indexes.items():
        _, vectors = engine.store.vectors(space, keys)
        for v in vectors:
            needles.append(np.ascontiguousarray(v, dtype="<f4").tobytes()[:64])
            canonical = index.canonical(v[None, :])[0]  # as the index files keep it
            needles.append(np.ascontiguousarray(canonical, dtype="<f4").tobytes()[:64])
            needles.append(np.ascontiguousarray(canonical, dtype="<f2").tobytes()[:32])
    return needles


@pytest.mark.parametrize(
    ("backend", "quantization"), [("faiss", "int8"), ("usearch", "f16"), ("flat", "f32")]
)
def test_delete_leaves_no_fragment_on_disk(tmp_path: Path, backend: str, quantization: str):
    db = tmp_path / "kb"
    config = EngineConfig(
        encoder="hash",
        index=IndexConfig(backend=backend, quantization=quantization),
        chunk_tokens=64,
        chunk_overlap=8,
        checkpoint_ops=1,  # index checkpoints holding the document exist on disk
    )
    with Engine.open(db, config) as engine:
        engine.ingest([("secret.txt", SECRET.encode()), ("other.txt", OTHER.encode()), *MANY])
        engine.checkpoint()
        texts, vectors = _text_needles(), _vector_needles(engine, "secret.txt")
        # The scan sees the document before the delete, in the store and in the index files.
        assert find_fragments(db, texts)
        assert {p.parent.name for p, _ in find_fragments(db / "index", vectors)}
        assert find_fragments(db / "store.db", vectors) or find_fragments(db, vectors)
        lsn = engine.delete("secret.txt")
        assert find_fragments(db, texts + vectors) == [], "left while the engine is open"
    assert find_fragments(db, texts + vectors) == []
    with Engine.open(db) as engine:
        [record] = engine.erasure_report("secret.txt")
        assert record["doc_hash"] == doc_hash("secret.txt") and record["lsn"] == lsn
        assert record["items"] * 3 == len(vectors) and record["vectors"] == record["items"]
        # the rest still answers, by words and by vector (the hash encoder's dense ranking is
        # not meaningful enough to assert a hybrid top-1 on)
        assert engine.search("bearing lubrication", k=1, mode="bm25").hits[0].doc_id == "other.txt"
        dense = engine.search(OTHER, k=5, mode="dense").hits
        assert dense and dense[0].doc_id == "other.txt", [h.doc_id for h in dense]
        assert engine.erasure_report("other.txt") == []
    # The record holds the id's hash, never the id (the op log keeps ids: see docs/notes).
    conn = sqlite3.connect(db / "store.db")
    rows = conn.execute("SELECT * FROM erasures").fetchall()
    conn.close()
    assert rows and not any("secret.txt" in str(value) for row in rows for value in row)


def test_erasure_record_survives_reingest_and_cli_reports_it(tmp_path: Path):
    db, doc = tmp_path / "kb", tmp_path / "note.txt"
    doc.write_text(SECRET)
    ingest = subprocess.run(
        [EDGERAG, "ingest", str(doc), "--db", str(db), "--encoder", "hash"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ingest.returncode == 0, ingest.stderr
    deleted = subprocess.run(
        [EDGERAG, "delete", "note.txt", "--db", str(db)], capture_output=True, text=True
    )
    assert deleted.returncode == 0, deleted.stderr
    assert str(doc.resolve()) in deleted.stdout  # the resolved id, which the record hashes
    report = subprocess.run(
        [EDGERAG, "erasure-report", str(doc), "--db", str(db), "--json"],
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    body = json.loads(report.stdout)
    [record] = body["local"]
    assert record["doc_hash"] == doc_hash(str(doc.resolve())) and record["lsn"] == 2
    assert body["live"] is False
    missing = subprocess.run(
        [EDGERAG, "erasure-report", "never-there.txt", "--db", str(db)],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "no erasure record" in missing.stdout
    # Ingesting it again does not erase the proof of the first erasure.
    with Engine.open(db) as engine:
        engine.ingest(doc)
        engine.delete(str(doc))
        assert [r["lsn"] for r in engine.erasure_report(str(doc))] == [2, 4]


def test_http_delete_removes_the_kept_original_too(tmp_path: Path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from edgerag.server import ServerSettings, create_app
    from edgerag.server.auth import KeyStore

    db = tmp_path / "kb"
    Engine.open(db, FAST).close()
    key = KeyStore(db).create("write", "test")[1]
    with TestClient(create_app(ServerSettings(db=db))) as client:
        r = client.post(
            "/ingest", files={"files": ("secret.md", SECRET.encode())}, headers={"X-API-Key": key}
        )
        assert r.status_code == 200, r.text
        assert find_fragments(db / "originals", [SECRET.encode()[:200]])  # kept for previews
        r = client.delete("/documents/secret.md", headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
    assert find_fragments(db, _text_needles() + [SECRET.encode()[:40]]) == []


def test_without_index_rebuild_only_quantized_codes_stay(tmp_path: Path):
    """``erase_rebuilds_index=False`` (cheap deletes): the float32 originals and the store are
    still clean, the usearch file keeps the deleted vectors' f16 codes: what the knob trades."""
    db = tmp_path / "kb"
    config = EngineConfig(
        encoder="hash",
        index=IndexConfig(backend="usearch", quantization="f16"),
        chunk_tokens=64,
        chunk_overlap=8,
        erase_rebuilds_index=False,
    )
    with Engine.open(db, config) as engine:
        engine.ingest([("secret.txt", SECRET.encode()), *MANY])
        vectors = _vector_needles(engine, "secret.txt")
        f32, f16 = vectors[1::3], vectors[2::3]
        engine.delete("secret.txt")
    assert find_fragments(db, _text_needles() + vectors[0::3] + f32) == []
    assert {p.name for p, _ in find_fragments(db, f16)} == {"usearch.index"}
