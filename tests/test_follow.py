"""Two engines on one directory (as two processes would have): following the op log,
spaces made by the other, checkpoints that never go back, private originals files.

flock locks conflict between separate open file descriptions even inside one process, so two
Engine objects here exercise the same locking as two processes (test_multiproc runs real ones).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgerag import Engine, EngineConfig, IndexConfig
from edgerag.check import check_collection
from edgerag.index.space import MANIFEST, SpaceIndex
from edgerag.store.ops import UPSERT, DocumentRecord, ItemRecord, Op, SpaceVectors
from edgerag.types import item_key

CONFIG = EngineConfig(
    encoder="hash", index=IndexConfig(backend="faiss", quantization="int8"), checkpoint_ops=1000
)


def note(i: int) -> tuple[str, bytes]:
    return f"n-{i}.txt", f"note{i} about valve {i} and the pump seal".encode()


def found(engine: Engine, i: int) -> bool:
    hits = engine.search(f"note{i}", k=1, filters={"source": f"n-{i}.txt"}, mode="dense").hits
    return bool(hits) and hits[0].doc_id == f"n-{i}.txt"


def test_each_engine_sees_the_others_writes(tmp_path: Path) -> None:
    db = tmp_path / "kb"
    a, b = Engine.open(db, CONFIG), Engine.open(db)
    try:
        for i in range(0, 20, 2):
            a.ingest([note(i)])
            b.ingest([note(i + 1)])
        assert all(found(a, i) and found(b, i) for i in range(20))
        a.delete("n-4.txt")
        assert not found(b, 4)
        for engine in (a, b):
            text = engine.stats()["spaces"]["text"]
            assert text["lag"] == 0 and text["vectors"] == text["store_vectors"] == 19
    finally:
        a.close()
        b.close()
    assert check_collection(db).ok


def test_a_space_made_by_the_other_engine_is_followed(tmp_path: Path) -> None:
    db = tmp_path / "kb"
    a, b = Engine.open(db, CONFIG), Engine.open(db)
    try:
        key = item_key("pic.png", 0)
        vec = np.ones((1, 8), dtype=np.float32) / np.sqrt(8)
        text_vec = a.encoder.encode(["a red valve"])
        jpeg = b"\xff\xd8\xff"
        op = Op(
            kind=UPSERT,
            doc_id="pic.png",
            document=DocumentRecord("pic.png", "pic.png", "image", "image/png", "h", 3, "pic"),
            items=[ItemRecord(key, "pic.png#0", 0, "image", "a red valve", thumbnail=jpeg)],
            vectors={
                "text": SpaceVectors("hash", a.encoder.version, np.array([key]), text_vec),
                "visual": SpaceVectors("fake-visual", "1", np.array([key]), vec),
            },
        )
        a.apply(op)
        assert "visual" not in b.indexes
        b.follow()
        assert "visual" in b.indexes and b.indexes["visual"].keys().tolist() == [key]
        assert b.stats()["spaces"]["visual"]["in_sync"]
    finally:
        a.close()
        b.close()
    assert check_collection(db).ok


def test_a_checkpoint_never_replaces_a_newer_one(tmp_path: Path) -> None:
    db = tmp_path / "kb"
    a, b = Engine.open(db, CONFIG), Engine.open(db)
    try:
        for i in range(5):
            a.ingest([note(i)])
        a.checkpoint()
        published = SpaceIndex.open(db / "index" / "text", a.indexes["text"].spec, CONFIG.index)
        assert published.applied_lsn == 5
        published.close()
        stale = b.indexes["text"]  # b has not searched or written since: still at LSN 0
        assert stale.applied_lsn == 0
        assert stale.checkpoint() is False
    finally:
        b.close()  # closing checkpoints too; the newer manifest stays
        a.close()
    reopened = SpaceIndex.open(db / "index" / "text", published.spec, CONFIG.index)
    assert reopened.applied_lsn == 5 and len(reopened) == 5
    reopened.close()


def test_originals_another_engine_maps_are_never_written(tmp_path: Path) -> None:
    db = tmp_path / "kb"
    index_dir = db / "index" / "text"
    a = Engine.open(db, CONFIG)
    b = None
    try:
        for i in range(5):
            a.ingest([note(i)])
        a.checkpoint()  # publishes a's originals file (5 rows)
        (shared,) = index_dir.glob("originals-*.f32")
        prefix = shared.read_bytes()
        b = Engine.open(db)  # loads a's checkpoint: maps a's file read-only
        b.ingest([note(5)])  # copy on write: b appends to a file of its own
        a.ingest([note(6)])  # a appends to its file, past the published prefix
        assert len(list(index_dir.glob("originals-*.f32"))) == 2
        assert shared.read_bytes()[: len(prefix)] == prefix
        assert all(found(a, i) and found(b, i) for i in range(7))
        b.checkpoint()  # b's state (LSN 7) replaces a's manifest; a's file stays: a lives
        assert shared.exists() and shared.name not in (index_dir / MANIFEST).read_text()
    finally:
        a.close()
        if b is not None:
            b.close()
    # both closed: the next checkpoint sweeps every originals file no manifest names
    assert check_collection(db).ok
    named = (index_dir / MANIFEST).read_text()
    assert all(p.name in named for p in index_dir.glob("originals-*.f32"))
