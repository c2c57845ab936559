"""The Milvus upstream through pymilvus against Milvus Lite (started by the client)."""

from __future__ import annotations

import pytest
from tests.conftest import FAST
from tests.test_upstream import assert_upstream_equals_store, make_sink

from edgerag import Engine, EngineConfig
from edgerag.store.ops import DELETE, Op
from edgerag.upstream.base import UpstreamMismatchError
from edgerag.upstream.federated import federated_search
from edgerag.upstream.sink import RETENTION_ORIGIN

pytest.importorskip("pymilvus", reason="the milvus extra is not installed")
pytest.importorskip("milvus_lite", reason="milvus-lite (the embedded Milvus) is not installed")


def test_sync_delete_shrink_and_federated_search(engine, docs, tmp_path):
    engine.ingest(docs)
    long = tmp_path / "long.txt"
    long.write_text(" ".join(f"word{i}" for i in range(900)))
    engine.ingest(long)
    odd = "we\"ird\\doc ' name.txt"  # quotes and a backslash in a document id
    engine.ingest([(odd, b"an oddly named note")])
    sink, upstream = make_sink(engine, str(tmp_path / "milvus.db"), kind="milvus")
    try:
        sink.sync_once()
        assert_upstream_equals_store(engine, upstream)
        docs_by_name = {d["source"].rsplit("/", 1)[-1]: d["doc_id"] for d in engine.documents()}
        assert upstream.count_doc("text", odd) == 1
        engine.delete(odd)
        engine.delete(docs_by_name["alarms.txt"])
        long.write_text("short now")
        engine.ingest(long)
        sink.sync_once()
        assert upstream.count_doc("text", docs_by_name["alarms.txt"]) == 0
        assert upstream.count_doc("text", odd) == 0
        assert upstream.count_doc("text", docs_by_name["long.txt"]) == 1
        assert_upstream_equals_store(engine, upstream)
        pump = docs_by_name["pump.md"]
        engine.apply(Op(kind=DELETE, doc_id=pump, origin=f"{RETENTION_ORIGIN}test"))
        sink.sync_once()
        r = federated_search(engine, upstream, "mechanical seal pump leaks", k=5, scope="all")
        assert not r.partial
        tiers = {h.doc_id: t for h, t in zip(r.hits, r.tiers, strict=True)}
        assert tiers[pump] == "upstream"
        hit = next(h for h in r.hits if h.doc_id == pump)
        assert "mechanical seal" in hit.text and hit.source.endswith("pump.md")
        filtered = federated_search(
            engine, upstream, "pump", k=5, scope="upstream", filters={"doc_id": pump}
        )
        assert {h.doc_id for h in filtered.hits} == {pump}
    finally:
        upstream.close()


def test_refuses_a_collection_built_by_another_encoder(engine, docs, tmp_path):
    engine.ingest(docs)
    target = str(tmp_path / "milvus.db")
    sink, upstream = make_sink(engine, target, kind="milvus")
    sink.sync_once()
    upstream.close()
    other = Engine.open(":memory:", EngineConfig(encoder="minilm", index=FAST.index))
    try:
        other.ingest(docs)
        sink2, upstream2 = make_sink(other, target, kind="milvus")
        with pytest.raises(UpstreamMismatchError, match="refusing to mix encoders"):
            sink2.step()
        upstream2.close()
    finally:
        other.close()
