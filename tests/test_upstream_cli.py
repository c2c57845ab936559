"""`edgerag upstream …` and `edgerag search --scope` as a user runs them."""

from __future__ import annotations

import json

import pytest
from tests.test_cli import run

pytest.importorskip("qdrant_client", reason="the qdrant extra is not installed")


def test_add_sync_status_search_evict(tmp_path, docs):
    db, target = tmp_path / "kb", tmp_path / "qdrant"
    run("ingest", str(docs), "--db", str(db), "--encoder", "hash")
    run("upstream", "add", "qdrant", str(target), "--db", str(db), "--collection", "plant3")
    before = json.loads(run("upstream", "status", "--db", str(db), "--json").stdout)
    row = before["upstreams"][0]
    assert row["lag_lsn"] == row["last_lsn"] == 3 and row["lag_s"] >= 0
    assert row["collection"] == "plant3" and row["shipped_lsn"] == 0
    assert "shipped 3 ops" in run("upstream", "sync", "--db", str(db), "--once").stdout
    after = json.loads(run("upstream", "status", "--db", str(db), "--json").stdout)
    assert after["upstreams"][0]["lag_lsn"] == 0 and after["upstreams"][0]["lag_s"] == 0
    run("upstream", "retention", "--db", str(db), "--max-age", "text=0s")
    evicted = json.loads(run("upstream", "evict", "--db", str(db), "--json").stdout)
    assert evicted["evicted"] == 3 and evicted["kept_unacknowledged"] == 0
    local = json.loads(run("search", "pump seal", "--db", str(db), "--json").stdout)
    assert local["hits"] == []
    both = json.loads(
        run("search", "pump seal", "--db", str(db), "--json", "--scope", "all").stdout
    )
    assert both["hits"] and {h["tier"] for h in both["hits"]} == {"upstream"}
    assert both["partial"] is False
    recent = run("search", "pump seal", "--db", str(db), "--scope", "all", "--since", "1h")
    assert "[upstream]" in recent.stdout


def test_bad_target_kind_and_durations_are_usage_errors(tmp_path, docs):
    db = tmp_path / "kb"
    run("ingest", str(docs), "--db", str(db), "--encoder", "hash")
    bad = run("upstream", "add", "weaviate", "x", "--db", str(db), ok=False)
    assert bad.returncode == 2 and "weaviate" in bad.stderr
    run("upstream", "add", "qdrant", str(tmp_path / "q"), "--db", str(db))
    dur = run("search", "pump", "--db", str(db), "--since", "soon", ok=False)
    assert dur.returncode == 2 and "duration 'soon'" in dur.stderr
    size = run("upstream", "retention", "--db", str(db), "--max-bytes", "text=lots", ok=False)
    assert size.returncode == 2 and "size 'lots'" in size.stderr
    missing = run("upstream", "sync", "--db", str(db), "--name", "nope", ok=False)
    assert missing.returncode == 1 and "no upstream 'nope'" in missing.stderr
