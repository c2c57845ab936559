"""Honest errors over HTTP: filter typos are 400 with a JSON body, /answer follows the same
unknown-field rule as every endpoint, /docs works offline and is counted under its own route."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from edgerag import Engine, EngineConfig, IndexConfig  # noqa: E402
from edgerag.errors import ConfigError  # noqa: E402
from edgerag.server import ServerSettings, create_app  # noqa: E402
from edgerag.server.auth import KeyStore  # noqa: E402

FAST = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))
ALARM = b"Alarm E-107 means the discharge pressure is above the trip limit. Check the valve."


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    db = tmp_path / "kb"
    with Engine.open(db, FAST) as engine:
        engine.ingest([("alarms.txt", ALARM)])
    KeyStore(db).create("write", "test")
    with TestClient(create_app(ServerSettings(db=db))) as c:
        yield c


@pytest.mark.parametrize(
    "filters,key,allowed",
    [
        ({"modality": "txt"}, "modality", "text, image, audio, video"),
        ({"page": "abc"}, "page", "whole number"),
        ({"source": "[abc.txt"}, "source", "unclosed '['"),
        ({"bad key": "x"}, "bad key", "built-in keys are"),
    ],
)
@pytest.mark.parametrize("route", ["/search", "/ask"])
def test_filter_typos_are_400_with_a_json_reason(client, route, filters, key, allowed):
    r = client.post(route, json={"query": "alarm", "filters": filters})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request"
    assert key in error["message"] and allowed in error["message"]


def test_a_metadata_filter_that_matches_nothing_is_still_200(client):
    r = client.post("/search", json={"query": "alarm", "filters": {"site": "nowhere"}})
    assert r.status_code == 200 and r.json()["hits"] == []
    r = client.post("/search", json={"query": "alarm", "filters": {"modality": "text"}})
    assert r.status_code == 200 and r.json()["hits"]


@pytest.mark.parametrize("route", ["/search", "/ask", "/answer"])
def test_every_query_endpoint_rejects_unknown_fields(client, route):
    r = client.post(route, json={"query": "alarm", "qestion": "typo"})
    assert r.status_code == 422, r.text
    assert "qestion" in r.text


def test_answer_accepts_query_as_alias_and_names_its_own_field_when_empty(client):
    for field in ("question", "query", "text"):
        r = client.post("/answer", json={field: "What does alarm E-107 mean?"})
        assert r.status_code == 200, r.text
        assert "discharge" in r.json()["answer"]
    r = client.post("/answer", json={})
    assert r.status_code == 400
    assert "`question`" in r.json()["error"]["message"]


def test_create_app_refuses_read_keys_without_any_key(tmp_path):
    db = tmp_path / "kb"
    Engine.open(db, FAST).close()
    with pytest.raises(ConfigError, match="no API key exists"):
        create_app(ServerSettings(db=db, require_read_keys=True))


def test_docs_assets_are_served_locally(client):
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(u.startswith("/") for u in urls), urls  # nothing from a CDN
    assert any(u.endswith(".js") for u in urls) and any(u.endswith(".css") for u in urls)
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 500, url
    assert "swagger-ui-bundle" in page.text
    assert client.get("/openapi.json").json()["info"]["title"] == "edgerag"
    assert client.get("/redoc").status_code == 404  # ReDoc needs a CDN: off


def test_docs_and_openapi_are_counted_under_their_own_routes(client):
    client.get("/docs")
    client.get("/openapi.json")
    client.get("/docs-assets/swagger-ui.css")
    client.get("/no-such-page")
    metrics = client.get("/metrics").text
    counted = re.findall(r"edgerag_http_requests_total\{([^}]*)\} (\S+)", metrics)
    labels = {dict(re.findall(r'(\w+)="([^"]*)"', raw))["route"]: float(v) for raw, v in counted}
    assert labels.get("/docs") == 1 and labels.get("/openapi.json") == 1
    assert labels.get("/docs-assets") == 1
    assert labels.get("unmatched") == 1  # only /no-such-page
