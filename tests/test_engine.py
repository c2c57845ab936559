from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgerag import Engine
from edgerag.errors import ConfigError, NotFoundError


def test_ingest_search_roundtrip(engine, docs):
    report = engine.ingest(docs)
    assert report.ok, report.errors
    assert len(report.added) == 3 and report.items >= 3
    response = engine.search("E-107 discharge pressure", k=3)
    assert response.hits[0].source.endswith("alarms.txt")
    assert {"dense", "bm25", "fused"} <= set(response.hits[0].scores)  # fitted fusion (default)
    assert {"encode", "ann", "bm25", "fuse", "hydrate", "total"} <= set(response.timings_ms)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_every_mode_finds_the_passage(engine, docs, mode):
    engine.ingest(docs)
    hits = engine.search("bearing grease operating hours", k=2, mode=mode).hits
    assert hits and hits[0].source.endswith("grease.html")
    assert "tracking" not in hits[0].text  # script dropped by the HTML extractor


def test_unchanged_file_is_a_noop_and_changed_file_replaces(engine, docs):
    first = engine.ingest(docs)
    again = engine.ingest(docs)
    assert again.added == [] and len(again.unchanged) == 3
    assert again.lsn == first.lsn  # no op written
    (docs / "alarms.txt").write_text("Alarm E-108 means the suction pressure is too low.\n")
    changed = engine.ingest(docs)
    assert len(changed.added) == 1
    texts = " ".join(h.text for h in engine.search("alarm", k=10, mode="bm25").hits)
    assert "E-108" in texts and "E-107" not in texts


def test_delete_removes_from_store_index_and_fts(engine, docs):
    engine.ingest(docs)
    doc = next(d for d in engine.documents() if d["source"].endswith("pump.md"))
    engine.delete(doc["doc_id"])
    for mode in ("dense", "bm25", "hybrid"):
        assert all(not h.source.endswith("pump.md") for h in engine.search("seal", mode=mode).hits)
    assert len(engine.indexes["text"]) == sum(engine.store.count_items().values())
    with pytest.raises(NotFoundError):
        engine.delete(doc["doc_id"])


def test_delete_by_path(engine, docs):
    engine.ingest(docs)
    engine.delete(str(docs / "pump.md"))
    assert engine.stats()["documents"] == 2


def test_bytes_input_and_metadata(engine):
    engine.ingest(
        [("notes/valve.txt", b"The relief valve opens at 12 bar.")], metadata={"site": "A"}
    )
    hit = engine.search("relief valve", k=1).hits[0]
    assert hit.doc_id == "notes/valve.txt" and hit.metadata["site"] == "A"


def test_bad_inputs_do_not_stop_the_batch_or_lose_data(engine, docs, tmp_path):
    engine.ingest(docs)
    before = engine.stats()["documents"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "binary.txt").write_bytes(bytes(range(256)) * 10)
    (bad / "garbage.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 50)
    (bad / "good.txt").write_text("The coolant filter is changed monthly.")
    report = engine.ingest(sorted(bad.iterdir()))
    failed = {Path(s).name: reason for s, reason in report.errors}
    assert set(failed) == {"empty.txt", "binary.txt", "garbage.pdf"}
    assert all(reason for reason in failed.values())
    assert len(report.added) == 1
    assert engine.stats()["documents"] == before + 1


def test_missing_file_is_reported(engine, tmp_path):
    report = engine.ingest(tmp_path / "nope.txt")
    assert report.errors and "nope.txt" in report.errors[0][0]


def test_validation(engine):
    with pytest.raises(ConfigError, match="mode"):
        engine.search("x", mode="nope")
    with pytest.raises(ConfigError, match="k must"):
        engine.search("x", k=0)


def test_reopen_replays_and_survives_corrupt_index(tmp_path, docs, disk_config):
    db = tmp_path / "db"
    with Engine.open(db, disk_config) as eng:
        eng.ingest(docs)
        expected = [h.id for h in eng.search("pump seal torque", k=3).hits]
    # Corrupt every index file: it must be detected and rebuilt, never served.
    files = [p for p in (db / "index").rglob("*") if p.is_file() and p.name != ".lock"]
    assert files
    for f in files:
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.write_bytes(bytes(data))
    with Engine.open(db) as eng:
        assert [h.id for h in eng.search("pump seal torque", k=3).hits] == expected
        assert eng.stats()["spaces"]["text"]["lag"] == 0


def test_missing_index_is_rebuilt(tmp_path, docs, disk_config):
    import shutil

    db = tmp_path / "db"
    with Engine.open(db, disk_config) as eng:
        eng.ingest(docs)
    shutil.rmtree(db / "index")
    with Engine.open(db) as eng:
        assert len(eng.indexes["text"]) == sum(eng.store.count_items().values())


def test_config_is_persisted(tmp_path, docs, disk_config):
    db = tmp_path / "db"
    Engine.open(db, disk_config).close()
    assert json.loads((db / "config.json").read_text())["encoder"] == "hash"
    with Engine.open(db) as eng:
        assert eng.config == disk_config


def test_stats(engine, docs):
    engine.ingest(docs)
    info = engine.stats()
    assert info["documents"] == 3
    assert info["spaces"]["text"]["vectors"] == sum(info["items"].values())
    assert info["lsn"] == 3


def test_encoder_change_reembeds_only_stale_items(tmp_path, docs):
    from edgerag.config import EngineConfig
    from edgerag.encoders.fake import HashEncoder
    from edgerag.index.base import IndexConfig

    cfg = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))
    db = tmp_path / "db"
    with Engine.open(db, cfg) as eng:
        eng.ingest(docs)

    class HashV2(HashEncoder):
        version = "2"

    with Engine.open(db, cfg, encoder=HashV2()) as eng:
        assert len(eng.store.stale_keys("text", "hash", "2")) == 0
        keys = eng.indexes["text"].keys()
        np.testing.assert_array_equal(np.sort(keys), np.sort(eng.store.filter_keys({})))


def test_an_in_memory_engine_removes_its_index_dir_even_unclosed(docs):
    """Its index files live in a private temp dir: close() removes it, and so does the
    collection of an engine nobody closed (such engines once left one dir each in /tmp)."""
    import gc

    from conftest import FAST

    closed = Engine.open(":memory:", FAST)
    closed.ingest(docs)
    scratch = closed._scratch
    assert scratch is not None and any(scratch.iterdir())
    closed.close()
    assert not scratch.exists()

    dropped = Engine.open(":memory:", FAST)
    dropped.ingest(docs)
    scratch = dropped._scratch
    assert scratch is not None and scratch.exists()
    del dropped
    gc.collect()
    assert not scratch.exists()
