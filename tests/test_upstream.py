"""Upstream sink → Qdrant local mode and Milvus Lite (the real client libraries)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from tests.conftest import FAST

from edgerag import Engine
from edgerag.store.ops import DELETE, Op
from edgerag.upstream.base import UpstreamMismatchError, UpstreamSpec, open_upstream
from edgerag.upstream.sink import RETENTION_ORIGIN, Sink, upstream_status
from edgerag.upstream.state import UpstreamState

pytest.importorskip("qdrant_client", reason="the qdrant extra is not installed")


def assert_upstream_equals_store(engine: Engine, upstream) -> None:
    """Ids, vectors (within float32 normalisation) and payload doc ids match the store."""
    for name in engine.store.spaces():
        keys = np.array(sorted(engine.store.filter_keys({})), dtype=np.int64)
        present, vectors = engine.store.vectors(name, keys)
        up = upstream.dump(name)
        assert sorted(up) == sorted(present.tolist()), name
        items = engine.store.items(present.tolist())
        for key, vec in zip(present.tolist(), vectors, strict=True):
            got, payload = up[key]
            np.testing.assert_allclose(got, vec, atol=1e-6)
            assert payload["doc_id"] == items[key]["doc_id"]
            assert payload["item_id"] == items[key]["item_id"]


def make_sink(engine: Engine, target: str, kind: str = "qdrant", collection: str = "edgerag"):
    state = UpstreamState(engine.store)
    spec = UpstreamSpec(kind, target, collection)
    state.add("default", spec)
    upstream = open_upstream(spec)
    return Sink(engine.store, upstream, state), upstream


def test_ingest_sync_equals_store_then_delete_reaches_upstream(engine, docs, tmp_path):
    engine.ingest(docs)
    sink, upstream = make_sink(engine, str(tmp_path / "q"))
    assert sink.sync_once() == engine.store.last_lsn()
    assert_upstream_equals_store(engine, upstream)
    pump = next(d["doc_id"] for d in engine.documents() if d["source"].endswith("pump.md"))
    payload = next(p for _, p in upstream.dump("text").values() if p["doc_id"] == pump)
    assert payload["encoder"] == engine.encoder.id and payload["text"]
    assert payload["source"].endswith("pump.md") and payload["modality"] == "text"
    engine.delete(pump)
    sink.sync_once()
    assert upstream.count_doc("text", pump) == 0
    assert_upstream_equals_store(engine, upstream)
    status = sink.status()
    assert status["lag_lsn"] == 0 and status["shipped_lsn"] == engine.store.last_lsn()


def test_reingest_that_shrinks_a_document_drops_its_extra_items(engine, tmp_path):
    doc = tmp_path / "long.txt"
    doc.write_text(" ".join(f"word{i}" for i in range(900)))
    engine.ingest(doc)
    sink, upstream = make_sink(engine, ":memory:")
    sink.sync_once()
    before = len(upstream.dump("text"))
    doc.write_text("short now")
    engine.ingest(doc)
    sink.sync_once()
    assert len(upstream.dump("text")) == 1 < before
    assert_upstream_equals_store(engine, upstream)


def test_refuses_a_collection_built_by_another_encoder(engine, docs, tmp_path):
    engine.ingest(docs)
    sink, upstream = make_sink(engine, str(tmp_path / "q"))
    sink.sync_once()
    upstream.close()
    other = Engine.open(":memory:", FAST.__class__(encoder="minilm", index=FAST.index))
    try:
        other.ingest(docs)
        sink2, _ = make_sink(other, str(tmp_path / "q"))
        with pytest.raises(UpstreamMismatchError, match="refusing to mix encoders"):
            sink2.step()
        assert sink2.status()["shipped_lsn"] == 0
    finally:
        other.close()


def test_eviction_delete_is_not_shipped_but_erasure_is(engine, docs):
    engine.ingest(docs)
    sink, upstream = make_sink(engine, ":memory:")
    sink.sync_once()
    first, second = (d["doc_id"] for d in engine.documents()[:2])
    engine.apply(Op(kind=DELETE, doc_id=first, origin=f"{RETENTION_ORIGIN}age"))
    engine.delete(second)
    sink.sync_once()
    assert upstream.count_doc("text", first) > 0  # still in the cold tier
    assert upstream.count_doc("text", second) == 0  # erased everywhere


class Down:
    """An upstream that is unreachable (every call raises like a refused connection)."""

    def __init__(self, real) -> None:
        self.real, self.down = real, True
        self.spec, self.ensured = real.spec, real.ensured

    def __getattr__(self, name):
        def call(*args, **kwargs):
            if self.down:
                raise ConnectionRefusedError("upstream down")
            return getattr(self.real, name)(*args, **kwargs)

        return call


def test_outage_grows_lag_then_catches_up(engine, docs):
    import threading

    sink, real = make_sink(engine, ":memory:")
    down = Down(real)
    sink.upstream = down
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop, 0.05, 0.2), daemon=True)
    thread.start()
    engine.ingest(docs)
    status = upstream_status(engine.store, sink.state, "default")
    assert status["lag_lsn"] == engine.store.last_lsn()
    for _ in range(100):
        if sink.status()["error"]:
            break
        stop.wait(0.05)
    assert "upstream down" in sink.status()["error"]
    down.down = False
    for _ in range(400):
        if sink.status()["lag_lsn"] == 0:
            break
        stop.wait(0.05)
    stop.set()
    thread.join(10)
    assert sink.status()["lag_lsn"] == 0 and sink.status()["error"] is None
    assert_upstream_equals_store(engine, real)


# federated search -----------------------------------------------------------------------
from edgerag.upstream.federated import federated_search  # noqa: E402


@pytest.fixture
def tiered(engine, docs):
    """The pump manual lives only upstream (evicted from the edge after shipping)."""
    engine.ingest(docs)
    sink, upstream = make_sink(engine, ":memory:")
    sink.sync_once()
    pump = next(d["doc_id"] for d in engine.documents() if d["source"].endswith("pump.md"))
    engine.apply(Op(kind=DELETE, doc_id=pump, origin=f"{RETENTION_ORIGIN}test"))
    sink.sync_once()
    return engine, upstream, pump


def test_scopes_tier_tags_and_dedup(tiered):
    engine, upstream, pump = tiered
    q = "mechanical seal pump leaks at the shaft"
    local = federated_search(engine, upstream, q, k=5, scope="local")
    assert pump not in {h.doc_id for h in local.hits} and not local.asked_upstream
    both = federated_search(engine, upstream, q, k=5, scope="all")
    assert not both.partial and both.asked_upstream
    tiers = {h.doc_id: t for h, t in zip(both.hits, both.tiers, strict=True)}
    assert tiers[pump] == "upstream"  # found only upstream, merged into the edge's answer
    assert both.hits[0].doc_id == pump  # the best dense match, wherever it lives
    assert "edge" in both.tiers  # edge items the upstream also holds come back once, as edge
    assert len({h.key for h in both.hits}) == len(both.hits)
    only = federated_search(engine, upstream, q, k=5, scope="upstream")
    assert set(only.tiers) == {"upstream"} and only.hits[0].doc_id == pump
    body = both.to_dict()
    up = next(h for h in body["hits"] if h["doc_id"] == pump)
    assert up["tier"] == "upstream" and "mechanical seal" in up["text"]
    assert up["source"].endswith("pump.md") and body["partial"] is False


def test_upstream_filters_apply_and_unsupported_ones_make_it_partial(tiered):
    engine, upstream, pump = tiered
    q = "mechanical seal pump"
    other = federated_search(engine, upstream, q, k=5, scope="upstream", filters={"doc_id": "x"})
    assert other.hits == [] and not other.partial
    same = federated_search(engine, upstream, q, k=5, scope="upstream", filters={"doc_id": pump})
    assert {h.doc_id for h in same.hits} == {pump}
    tagged = federated_search(engine, upstream, q, k=5, scope="all", filters={"tags": "x"})
    assert tagged.partial and "tags" in tagged.reasons[0]


def test_unreachable_or_slow_upstream_is_partial_within_the_deadline(tiered):
    import time

    engine, upstream, _ = tiered
    down = Down(upstream)
    r = federated_search(engine, down, "pump seal", k=3, scope="all")
    assert r.partial and "unreachable" in r.reasons[0] and set(r.tiers) == {"edge"}

    class Slow(Down):
        def search(self, *args, **kwargs):
            time.sleep(5)
            return self.real.search(*args, **kwargs)

    slow = Slow(upstream)
    slow.down = False
    t0 = time.monotonic()
    r = federated_search(engine, slow, "pump seal", k=3, scope="all", timeout_s=0.3)
    assert time.monotonic() - t0 < 4.5  # bounded by the deadline, not the upstream's 5 s
    assert r.partial and "did not answer" in r.reasons[0] and r.hits
    none = federated_search(engine, None, "pump seal", k=3, scope="upstream")
    assert none.partial and none.hits == []


def test_auto_scope_asks_upstream_only_when_local_confidence_is_low(tiered):
    engine, upstream, pump = tiered
    sure = federated_search(engine, upstream, "pump seal", k=1, scope="auto", min_score=-1.0)
    assert not sure.asked_upstream
    unsure = federated_search(engine, upstream, "pump seal", k=1, scope="auto", min_score=1.01)
    assert unsure.asked_upstream
    few = federated_search(engine, upstream, "pump seal", k=50, scope="auto", min_score=-1.0)
    assert few.asked_upstream  # fewer local hits than asked for


# retention --------------------------------------------------------------------------------
from edgerag.upstream.retention import RetentionPolicy, evict, parse_size  # noqa: E402


def test_policy_parsing():
    p = RetentionPolicy.parse(["image=7d", "text=10m"], ["audio=500MB"])
    assert p.max_age_s == {"image": 7 * 86400, "text": 600} and p.max_bytes["audio"] == 500 << 20
    assert RetentionPolicy.from_json(p.to_json()) == p and parse_size("2048") == 2048
    with pytest.raises(ValueError, match="MODALITY=VALUE"):
        RetentionPolicy.parse(["smell=1d"], [])


def test_eviction_never_drops_an_unacknowledged_item(engine, tmp_path):
    engine.ingest([(f"n{i}.txt", f"note {i} about pump {i}".encode()) for i in range(12)])
    sink, upstream = make_sink(engine, ":memory:")
    sink.batch = 5
    sink.step()  # ships only LSN 1..5
    policy = RetentionPolicy(max_age_s={"text": 0})
    report = evict(engine, upstream, sink.state, policy=policy, now=time.time() + 1)
    shipped = {f"n{i}.txt" for i in range(5)}
    assert set(report.evicted) == shipped and len(report.kept_unacknowledged) == 7
    assert {d["doc_id"] for d in engine.documents()} == {f"n{i}.txt" for i in range(5, 12)}
    # an upstream that lost a point does not count as holding the document
    sink.sync_once()
    lost = upstream.dump("text")
    victim = next(k for k, (_, p) in lost.items() if p["doc_id"] == "n7.txt")
    upstream.delete_keys("text", [victim])
    report = evict(engine, upstream, sink.state, policy=policy, now=time.time() + 1)
    assert report.kept_unacknowledged == ["n7.txt"] and len(report.evicted) == 6
    # evicted items stay searchable through the upstream scope
    r = federated_search(engine, upstream, "note 3 about pump 3", k=3, scope="all")
    assert any(
        h.doc_id == "n3.txt" and t == "upstream" for h, t in zip(r.hits, r.tiers, strict=True)
    )
    # and eviction was not shipped as an erasure
    sink.sync_once()
    assert upstream.count_doc("text", "n3.txt") == 1


def test_max_bytes_evicts_oldest_first(engine):
    for i in range(6):
        engine.ingest([(f"b{i}.txt", b"x" * 100 + str(i).encode())])
    sink, upstream = make_sink(engine, ":memory:")
    sink.sync_once()
    report = evict(engine, upstream, sink.state, policy=RetentionPolicy(max_bytes={"text": 350}))
    assert report.evicted == ["b0.txt", "b1.txt", "b2.txt"]
    assert sum(d["size"] for d in engine.documents()) <= 350


def test_credentials_never_reach_status_or_errors(engine, monkeypatch):
    from edgerag.upstream.base import redact

    assert redact("https://admin:s3cret@qdrant.example:6333") == "https://***@qdrant.example:6333"
    state = UpstreamState(engine.store)
    monkeypatch.setenv("EDGERAG_UPSTREAM_API_KEY", "k3y-s3cret")
    spec = UpstreamSpec("qdrant", "https://admin:s3cret@127.0.0.1:9", "c")
    assert spec.api_key() == "k3y-s3cret"  # from the environment, not stored
    state.add("default", spec)
    assert "k3y" not in str(state.row("default"))
    sink = Sink(engine.store, open_upstream(spec, timeout_s=1), state)
    engine.ingest([("a.txt", b"pump seal")])
    sink._record(f"ConnectError: cannot reach {spec.target}")
    status = sink.status()
    assert "s3cret" not in str(status) and "***@127.0.0.1:9" in status["error"]


def test_a_real_unreachable_qdrant_url_gives_partial_results_and_a_growing_lag(engine, docs):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine.ingest(docs)
    sink, upstream = make_sink(engine, f"http://127.0.0.1:{port}")
    with pytest.raises(Exception):  # noqa: B017  (whatever the client raises for a refusal)
        sink.step()
    assert sink.status()["lag_lsn"] == engine.store.last_lsn() > 0
    r = federated_search(engine, upstream, "pump seal", k=3, scope="all", timeout_s=3)
    assert r.partial and "unreachable" in r.reasons[0] and r.hits
    assert set(r.tiers) == {"edge"}


def test_upstream_only_items_get_their_dense_rank_where_the_edge_alone_ranks():
    from edgerag.upstream.federated import _impute_edge_only

    ordered = {
        "dense": [(9, 0.9), (1, 0.8), (2, 0.7)],  # 9 lives only upstream
        "bm25": [(1, 5.0), (2, 4.0)],  # the edge's BM25 cannot see 9
    }
    _impute_edge_only(ordered, cold={9})
    assert [k for k, _ in ordered["bm25"]] == [9, 1, 2]
    assert [k for k, _ in ordered["dense"]] == [9, 1, 2]  # dense rankings are left alone
