"""HTTP API over an in-process app (TestClient): routes, auth, errors, limits, SSE, metrics."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_samples import painted_text

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from edgerag import Engine, EngineConfig, IndexConfig  # noqa: E402
from edgerag.errors import ConfigError  # noqa: E402
from edgerag.server import ServerSettings, create_app  # noqa: E402
from edgerag.server.auth import KeyStore  # noqa: E402
from edgerag.server.uploads import safe_name  # noqa: E402

FAST = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))
PUMP = b"# Pump seal\n\nReplace the seal when the pump leaks. Torque the gland bolts to 25 Nm."
ALARM = b"Alarm E-107 means the discharge pressure is above the trip limit. Check the valve."


@pytest.fixture
def db(tmp_path: Path) -> Path:
    Engine.open(tmp_path / "kb", FAST).close()
    return tmp_path / "kb"


@pytest.fixture
def keys(db: Path) -> dict[str, str]:
    store = KeyStore(db)
    return {scope: store.create(scope, f"test {scope}")[1] for scope in ("read", "write", "admin")}


def client_for(db: Path, **settings: object) -> TestClient:
    return TestClient(create_app(ServerSettings(db=db, **settings)), raise_server_exceptions=True)


@pytest.fixture
def client(db: Path, keys: dict[str, str]) -> Iterator[TestClient]:
    with client_for(db) as c:
        yield c


def w(keys: dict[str, str], scope: str = "write") -> dict[str, str]:
    return {"X-API-Key": keys[scope]}


def ingest(client: TestClient, keys: dict[str, str], name: str, data: bytes, **meta: object):
    files = {"files": (name, data)}
    form = {"metadata": json.dumps(meta)} if meta else {}
    return client.post("/ingest", files=files, data=form, headers=w(keys))


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
    return body["error"]


# --- documents ------------------------------------------------------------------------------
def test_ingest_multipart_search_get_and_file(client, keys, db):
    r = ingest(client, keys, "../../etc/pump.md", PUMP, tags=["pump"])
    assert r.status_code == 200, r.text
    assert r.json()["added"] == ["pump.md"] and r.json()["items"] == 1
    assert not (db.parent / "etc").exists()  # the client-named path was never touched
    hits = client.post("/search", json={"query": "seal leaks", "k": 3}).json()["hits"]
    assert hits[0]["doc_id"] == "pump.md" and hits[0]["metadata"]["tags"] == ["pump"]
    doc = client.get("/documents/pump.md").json()
    assert doc["source"] == "pump.md" and doc["items"] == 1
    assert [d["doc_id"] for d in client.get("/documents").json()] == ["pump.md"]
    original = client.get("/files/pump.md")
    assert original.status_code == 200 and original.content == PUMP
    assert "inline" in original.headers["content-disposition"]


def test_ingest_json_base64_with_slash_id(client, keys):
    body = {
        "documents": [
            {
                "name": "alarms.txt",
                "content_base64": base64.b64encode(ALARM).decode(),
                "metadata": {"doc_id": "manuals/kx40/alarms.txt", "site": "plant-3"},
            }
        ]
    }
    r = client.post("/ingest", json=body, headers=w(keys))
    assert r.status_code == 200 and r.json()["added"] == ["manuals/kx40/alarms.txt"]
    assert client.get("/documents/manuals/kx40/alarms.txt").json()["metadata"]["site"] == "plant-3"
    assert client.get("/files/manuals%2Fkx40%2Falarms.txt").content == ALARM
    hits = client.post("/search", json={"query": "E-107", "filters": {"site": "plant-3"}}).json()
    assert hits["hits"][0]["doc_id"] == "manuals/kx40/alarms.txt"
    assert client.delete("/documents/manuals/kx40/alarms.txt", headers=w(keys)).status_code == 200
    assert client.get("/documents/manuals/kx40/alarms.txt").status_code == 404


def test_client_cannot_choose_absolute_or_dotdot_ids(client, keys):
    for bad in ("/etc/passwd", "a/../../b"):
        r = ingest(client, keys, "x.txt", ALARM, doc_id=bad)
        assert r.status_code == 422 and "doc_id" in error_of(r)["message"]


def test_reingest_unchanged_and_bad_file_reported(client, keys):
    assert ingest(client, keys, "pump.md", PUMP).json()["added"] == ["pump.md"]
    assert ingest(client, keys, "pump.md", PUMP).json()["unchanged"] == ["pump.md"]
    r = client.post(
        "/ingest",
        headers=w(keys),
        files=[("files", ("a.txt", ALARM)), ("files", ("b.exe", b"MZ\x90\x00"))],
    )
    assert r.status_code == 200
    assert r.json()["added"] == ["a.txt"] and r.json()["errors"][0]["input"] == "b.exe"
    only_bad = client.post("/ingest", headers=w(keys), files={"files": ("b.exe", b"MZ")})
    assert only_bad.status_code == 422 and "b.exe" in error_of(only_bad)["message"]


def test_delete_removes_document_original_and_cache(client, keys, db):
    ingest(client, keys, "pump.md", PUMP)
    ingest(client, keys, "alarms.txt", ALARM)
    assert client.post("/search", json={"query": "gland bolts"}).json()["hits"]
    engine = client.app.state.engine
    assert engine.cache.stats()["entries"] >= 1
    r = client.delete("/documents/pump.md", headers=w(keys))
    assert r.status_code == 200 and r.json()["deleted"] == "pump.md"
    assert engine.cache.stats()["entries"] == 0
    hits = client.post("/search", json={"query": "gland bolts"}).json()["hits"]
    assert all(h["doc_id"] != "pump.md" for h in hits)
    assert client.get("/files/pump.md").status_code == 404
    assert not any(b"gland bolts" in p.read_bytes() for p in (db / "originals").iterdir())
    assert client.delete("/documents/pump.md", headers=w(keys)).status_code == 404


# --- auth -----------------------------------------------------------------------------------
def test_writes_need_a_key_and_the_right_scope(client, keys):
    no_key = client.post("/ingest", files={"files": ("a.txt", ALARM)})
    assert no_key.status_code == 401 and error_of(no_key)["type"] == "unauthorized"
    assert no_key.headers["www-authenticate"] == "Bearer"
    read_key = client.post("/ingest", files={"files": ("a.txt", ALARM)}, headers=w(keys, "read"))
    assert read_key.status_code == 403 and "read" in error_of(read_key)["message"]
    bearer = {"Authorization": f"Bearer {keys['write']}"}
    assert (
        client.post("/ingest", files={"files": ("a.txt", ALARM)}, headers=bearer).status_code == 200
    )
    bad = client.get("/documents", headers={"X-API-Key": "erk_00000000_nope"})
    assert bad.status_code == 401
    assert client.get("/admin/keys", headers=w(keys)).status_code == 403
    listed = client.get("/admin/keys", headers=w(keys, "admin")).json()
    assert {k["scope"] for k in listed} == {"read", "write", "admin"}
    assert all("sha256" not in k and "key" not in k for k in listed)


def test_admin_creates_and_revokes_keys(client, keys):
    created = client.post("/admin/keys", json={"scope": "write"}, headers=w(keys, "admin"))
    assert created.status_code == 201
    new = created.json()
    assert (
        client.post(
            "/ingest", files={"files": ("a.txt", ALARM)}, headers={"X-API-Key": new["key"]}
        ).status_code
        == 200
    )
    revoked = client.delete(f"/admin/keys/{new['id']}", headers=w(keys, "admin"))
    assert revoked.status_code == 200
    assert (
        client.post(
            "/ingest", files={"files": ("b.txt", PUMP)}, headers={"X-API-Key": new["key"]}
        ).status_code
        == 401
    )


def test_keys_are_stored_hashed(db, keys):
    stored = (db / "keys.json").read_text()
    assert all(secret not in stored for secret in keys.values())
    assert (db / "keys.json").stat().st_mode & 0o077 == 0


def test_reads_need_keys_when_asked_or_beyond_loopback(db, keys):
    with client_for(db, require_read_keys=True) as c:
        assert c.post("/search", json={"query": "x"}).status_code == 401
        assert c.get("/stats").status_code == 401
        assert c.get("/stats", headers=w(keys, "read")).status_code == 200
        assert c.get("/healthz").status_code == 200  # liveness stays open
    with client_for(db, host="0.0.0.0") as c:
        assert c.get("/documents").status_code == 401
        assert c.get("/metrics", headers=w(keys, "read")).status_code == 200


def test_refuses_non_loopback_without_any_key(tmp_path):
    Engine.open(tmp_path / "kb", FAST).close()
    with pytest.raises(ConfigError, match="without API keys"):
        create_app(ServerSettings(db=tmp_path / "kb", host="0.0.0.0"))


# --- errors and limits -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"query": "x", "mode": "fuzzy"}, 422, "validation_error"),
        ({"query": "x", "k": 0}, 422, "validation_error"),
        ({"query": "x", "unknown": 1}, 422, "validation_error"),
        ({"query": "   "}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
        ({"query": "x", "filters": {"time_from": "soon"}}, 400, "invalid_request"),
        ({"query": "x", "filters": {"bad key!": 1}}, 400, "invalid_request"),
        ({"query": "x", "filters": {"page": {"nested": 1}}}, 422, "validation_error"),
        ({"image_base64": "%%%not base64%%%"}, 422, "invalid_input"),
        ({"image_base64": base64.b64encode(b"not an image").decode()}, 422, "invalid_input"),
    ],
)
def test_bad_search_input_is_a_4xx_envelope(client, body, status, kind):
    r = client.post("/search", json=body)
    assert r.status_code == status, r.text
    assert error_of(r)["type"] == kind


def test_malformed_json_unknown_route_wrong_method_and_content_type(client, keys):
    r = client.post("/search", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 422 and error_of(r)["type"] == "validation_error"
    assert error_of(client.get("/nope"))["type"] == "not_found"
    r = client.put("/documents/x")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"
    r = client.post("/ingest", content=b"hello", headers={**w(keys), "content-type": "text/plain"})
    assert r.status_code == 415 and error_of(r)["type"] == "unsupported_media_type"
    r = client.post(
        "/ingest", data={"metadata": "[1]"}, files={"files": ("a.txt", ALARM)}, headers=w(keys)
    )
    assert r.status_code == 422 and "metadata" in error_of(r)["message"]


def test_request_and_upload_limits(db, keys):
    with client_for(db, max_request_bytes=4096, max_upload_bytes=1024) as c:
        big = c.post("/search", json={"query": "x" * 5000})
        assert big.status_code == 413 and error_of(big)["type"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
            yield b'{"query": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}'

        streamed = c.post("/search", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        upload = c.post("/ingest", files={"files": ("a.txt", b"word " * 400)}, headers=w(keys))
        assert upload.status_code == 413 and "a.txt" in error_of(upload)["message"]


def test_safe_names():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\x\\manual.pdf") == "manual.pdf"
    assert safe_name("..") == "upload" and safe_name("") == "upload"
    assert safe_name("a\x00b<script>.md") == "ab_script_.md"
    assert safe_name("Pumpe-Überdruck.pdf") == "Pumpe-Überdruck.pdf"


# --- answers ---------------------------------------------------------------------------------
def test_ask_json_follows_the_contract(client, keys):
    ingest(client, keys, "pump.md", PUMP)
    out = client.post("/ask", json={"query": "What torque for the gland bolts?"}).json()
    assert set(out) >= {"answer", "citations", "sources", "timings_ms", "partial", "generator"}
    assert "25 Nm" in out["answer"] and "[1]" in out["answer"]
    assert out["citations"][0]["doc_id"] == "pump.md"


def sse(text: str) -> list[dict]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        event = json.loads(lines["data"])
        assert lines["event"] == event["type"]
        events.append(event)
    return events


@pytest.mark.parametrize("how", ["flag", "accept"])
def test_ask_streams_sources_tokens_done(client, keys, how):
    ingest(client, keys, "pump.md", PUMP)
    body = {"query": "What torque for the gland bolts?"}
    if how == "flag":
        r = client.post("/ask", json={**body, "stream": True})
    else:
        r = client.post("/ask", json=body, headers={"Accept": "text/event-stream"})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and set(kinds[1:-1]) <= {"token"}
    assert "".join(e["text"] for e in events if e["type"] == "token").strip()
    assert "25 Nm" in events[-1]["answer"] and events[-1]["citations"]


def test_ask_stream_bad_input_is_a_status_not_an_event(client):
    r = client.post("/ask", json={"query": "x", "stream": True, "filters": {"time_to": "later"}})
    assert r.status_code == 400 and error_of(r)["type"] == "invalid_request"


def photo_of_text(text: str) -> bytes:
    pytest.importorskip("PIL.Image")
    return painted_text(text)


def test_answer_iot_call_with_a_photo(client, keys):
    ingest(client, keys, "alarms.txt", ALARM)
    ingest(client, keys, "pump.md", PUMP)
    photo = base64.b64encode(photo_of_text("ALARM E-107")).decode()
    r = client.post("/answer", json={"image_base64": photo, "question": "What does this mean?"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) >= {"answer", "retrieved"}
    assert out["retrieved"][0]["doc_id"] == "alarms.txt"
    assert "discharge pressure" in out["answer"]


def test_image_upload_gets_a_thumbnail(client, keys):
    r = ingest(client, keys, "panel.png", photo_of_text("E-107"))
    assert r.status_code == 200, r.text
    item = client.post("/search", json={"query": "E-107", "filters": {"modality": "image"}})
    hit = item.json()["hits"][0]
    thumb = client.get(f"/items/{hit['key']}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/")
    by_id = client.get(f"/items/{hit['id'].replace('#', '%23')}/thumbnail")
    assert by_id.content == thumb.content
    assert client.get("/items/123/thumbnail").status_code == 404


# --- system ------------------------------------------------------------------------------------
def test_health_ready_stats(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["lag"] == {"text": 0}
    assert client.get("/stats").json()["documents"] == 0


def test_readyz_is_503_when_an_index_misses_vectors(client, keys):
    """Readiness comes from the real state: an index at the right LSN that lost a vector
    the store holds is not ready (a counter a bug leaves at 0 must not say otherwise)."""
    ingest(client, keys, "pump.md", PUMP)
    index = client.app.state.engine.indexes["text"]
    key = index.keys()[:1]
    vector = index.get_vectors(key).copy()
    index.remove(key)
    try:
        r = client.get("/readyz")
        assert r.status_code == 503 and error_of(r)["type"] == "not_ready"
        assert "vector counts" in error_of(r)["message"]
        assert client.get("/stats").json()["spaces"]["text"]["in_sync"] is False
    finally:
        index.upsert(key, vector)
    assert client.get("/readyz").status_code == 200


def test_metrics_stage_histograms_counts_and_gauges(client, keys):
    ingest(client, keys, "pump.md", PUMP)
    client.post("/search", json={"query": "seal"})
    client.post("/ask", json={"query": "torque for the gland bolts?"})
    client.post("/search", json={"query": " "})
    text = client.get("/metrics").text
    for stage in ("encode", "ann", "bm25", "fuse"):
        assert f'edgerag_stage_seconds_count{{op="search",stage="{stage}"}} 1.0' in text
    for stage in ("retrieve", "rerank", "generate"):
        assert f'edgerag_stage_seconds_count{{op="ask",stage="{stage}"}} 1.0' in text
    assert 'edgerag_http_requests_total{method="POST",route="/search",status="400"} 1.0' in text
    assert 'edgerag_items{modality="text"} 1.0' in text
    assert "edgerag_oplog_lsn 1.0" in text and 'edgerag_index_lag{space="text"} 0.0' in text


def test_metrics_registries_are_per_app(db, keys):
    with client_for(db) as a, client_for(db) as b:
        a.get("/healthz")
        assert 'route="/healthz"' not in b.get("/metrics").text


def test_fleet_status_404_until_the_fleet_sets_it(client):
    assert client.get("/fleet/status").status_code == 404
    client.app.state.fleet_status = lambda: {"nodes": [{"id": "n1", "state": "green"}]}
    assert client.get("/fleet/status").json()["nodes"][0]["state"] == "green"


def test_web_page_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and '<textarea id="q"' in page.text
    assert client.get("/static/app.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/ingest", "/search", "/ask", "/answer", "/documents/{doc_id}"} <= set(spec["paths"])
    assert spec["paths"]["/ingest"]["post"]["x-required-scope"] == "write"


def test_result_cache_can_be_turned_off(db):
    with client_for(db, result_cache=False) as c:
        assert c.app.state.engine.cache.enabled is False


def test_keys_cli_create_list_revoke(db):
    from click.testing import CliRunner

    from edgerag.cli import main

    runner = CliRunner()
    created = runner.invoke(main, ["keys", "create", "--db", str(db), "--scope", "read"])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    record = KeyStore(db).verify(secret)
    listed = runner.invoke(main, ["keys", "list", "--db", str(db), "--json"])
    assert [k["id"] for k in json.loads(listed.stdout)] == [record.id]
    assert secret not in listed.stdout
    assert runner.invoke(main, ["keys", "revoke", record.id, "--db", str(db)]).exit_code == 0
    gone = runner.invoke(main, ["keys", "revoke", record.id, "--db", str(db)])
    assert gone.exit_code != 0 and "not found" in gone.output
    bad = runner.invoke(main, ["keys", "create", "--db", str(db), "--scope", "root"])
    assert bad.exit_code == 2
