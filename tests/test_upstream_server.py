"""`edgerag serve` runs the sink; /search takes a scope; /metrics shows the upstream lag."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("qdrant_client", reason="the qdrant extra is not installed")

from fastapi.testclient import TestClient  # noqa: E402
from tests.conftest import FAST  # noqa: E402

from edgerag import Engine  # noqa: E402
from edgerag.server import ServerSettings, create_app  # noqa: E402
from edgerag.store.ops import DELETE, Op  # noqa: E402
from edgerag.upstream.base import UpstreamSpec  # noqa: E402
from edgerag.upstream.sink import RETENTION_ORIGIN  # noqa: E402
from edgerag.upstream.state import UpstreamState  # noqa: E402


def lag(client: TestClient) -> float | None:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('edgerag_upstream_lag_lsn{upstream="default"}'):
            return float(line.split()[-1])
    return None


def test_server_ships_and_answers_with_a_scope(tmp_path, docs):
    db = tmp_path / "kb"
    with Engine.open(db, FAST) as engine:
        engine.ingest(docs)
        state = UpstreamState(engine.store)
        state.add("default", UpstreamSpec("qdrant", str(tmp_path / "q")))
        state.close()
    with TestClient(create_app(ServerSettings(db=db))) as client:
        deadline = time.monotonic() + 60
        while lag(client) != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lag(client) == 0
        engine = client.app.state.engine
        pump = next(d["doc_id"] for d in engine.documents() if d["source"].endswith("pump.md"))
        engine.apply(Op(kind=DELETE, doc_id=pump, origin=f"{RETENTION_ORIGIN}test"))
        local = client.post("/search", json={"query": "pump seal leaks", "k": 5}).json()
        assert pump not in {h["doc_id"] for h in local["hits"]}
        both = client.post("/search", json={"query": "pump seal leaks", "k": 5, "scope": "all"})
        body = both.json()
        assert both.status_code == 200 and body["partial"] is False
        tiers = {h["doc_id"]: h["tier"] for h in body["hits"]}
        assert tiers[pump] == "upstream" and "edge" in tiers.values()
        recent = client.post(
            "/search", json={"query": "pump seal", "k": 5, "scope": "all", "since": "1h"}
        ).json()
        assert recent["hits"]
        old = client.post("/search", json={"query": "pump seal", "since": "0s"}).json()
        assert old["hits"] == []


def test_scope_without_upstream_is_partial_not_an_error(tmp_path, docs):
    db = tmp_path / "kb"
    with Engine.open(db, FAST) as engine:
        engine.ingest(docs)
    with TestClient(create_app(ServerSettings(db=db))) as client:
        r = client.post("/search", json={"query": "pump seal", "k": 3, "scope": "all"})
        assert r.status_code == 200
        body = r.json()
        assert (
            body["partial"] is True and body["hits"] and "no upstream" in body["partial_reasons"][0]
        )
        assert lag(client) is None
