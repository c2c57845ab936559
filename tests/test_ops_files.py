"""deploy/: the Prometheus alert rules pass promtool (syntax and unit tests), and every metric the
rules and the Grafana dashboard query is one a real app's /metrics exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from edgerag import Engine, EngineConfig, IndexConfig  # noqa: E402
from edgerag.fleet.shardmap import FleetConfig  # noqa: E402
from edgerag.fleet.status import judge  # noqa: E402
from edgerag.server import ServerSettings, create_app  # noqa: E402
from edgerag.server.auth import KeyStore  # noqa: E402

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "edgerag.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool absent: apt-get install prometheus (in APT_PACKAGES)"
)

# PromQL words that are not metric names.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "topk", "bottomk", "abs", "clamp_min", "clamp_max", "label_values",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: strip strings, label matchers, ranges and grouping
    label lists; what is left that is not a PromQL word or a number is a metric name."""
    expr = re.sub(r"label_values\(\s*([^,]+),[^)]*\)", r"\1", expr)  # Grafana variable query
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return {w for w in words - PROMQL_WORDS if not w.startswith("__")}


def rule_exprs() -> list[str]:
    import yaml

    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def fleet_status() -> dict[str, Any]:
    """A real status document (the fleet's own judge) for 3 nodes, one of them stopped."""
    now = time.time()
    config = FleetConfig(shards=2, replicas=2)

    def beat(node: str, shards: dict[int, str], ts: float) -> dict[str, Any]:
        mods = {"text": {"applied": 3, "pending": 0, "lag_s": 0.4, "drift": 0.001, "sampled": 3}}
        return {
            "node": node,
            "ts": ts,
            "state": "serving",
            "lsn": 3,
            "shards": {
                str(s): {"state": st, "reason": "", "quarantines": 0, "modalities": mods}
                for s, st in shards.items()
            },
        }

    beats = {
        "n1": beat("n1", {0: "serving"}, now),
        "n2": beat("n2", {0: "serving", 1: "quarantined"}, now),
        "n3": beat("n3", {1: "serving"}, now - 120),  # stopped two minutes ago
    }
    return judge(config, {n: {} for n in beats}, {0: ["n1", "n2"], 1: ["n2", "n3"]}, beats, now)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name on a real app's /metrics after an ingest, a search and an answer."""
    db = tmp_path_factory.mktemp("ops") / "kb"
    config = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))
    Engine.open(db, config).close()
    _add_upstream(db, tmp_path_factory.mktemp("ops") / "qdrant")
    key = KeyStore(db).create("write", "ops test")[1]
    app = create_app(ServerSettings(db=db))
    with TestClient(app) as client:
        app.state.fleet_status = fleet_status
        headers = {"X-API-Key": key}
        files = [("files", ("a.txt", b"Alarm E-107: seal flush low.")), ("files", ("b.exe", b"MZ"))]
        assert client.post("/ingest", files=files, headers=headers).status_code == 200
        assert client.post("/search", json={"query": "E-107"}, headers=headers).status_code == 200
        assert client.post("/ask", json={"query": "E-107?"}, headers=headers).status_code == 200
        text = client.get("/metrics", headers=headers).text
    names = {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert 'edgerag_ingest_documents_total{outcome="error"} 1.0' in text
    assert 'edgerag_fleet_node_up{node="n3"} 0.0' in text
    assert 'edgerag_fleet_replica_quarantined{node="n2",shard="1"} 1.0' in text
    return names


def _add_upstream(db: Path, target: Path) -> None:
    """A Qdrant local-mode upstream, so the upstream gauges have samples on /metrics."""
    from edgerag.store.sqlite import Store
    from edgerag.upstream.base import UpstreamSpec
    from edgerag.upstream.state import UpstreamState

    store = Store(db / "store.db")
    state = UpstreamState(store)
    try:
        state.add("cold", UpstreamSpec("qdrant", str(target)))
    finally:
        state.close()
        store.close()


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    proc = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 11 rules found" in proc.stdout


@needs_promtool
def test_promtool_unit_tests_fire_each_alert() -> None:
    proc = subprocess.run(
        [PROMTOOL, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, stage) (rate(edgerag_stage_seconds_bucket{op="s"}'
        "[5m]))) > on (modality) group_left max by (modality) (edgerag_fleet_lag_budget_seconds)"
    )
    assert metric_names(expr) == {
        "edgerag_stage_seconds_bucket",
        "edgerag_fleet_lag_budget_seconds",
    }


def test_rules_query_only_exported_metrics(exported: set[str]) -> None:
    used = set().union(*(metric_names(e) for e in rule_exprs()))
    assert len(used) >= 10
    assert used <= exported, sorted(used - exported)


def test_dashboard_queries_only_exported_metrics(exported: set[str]) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "edgerag" and len(dash["panels"]) >= 15
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    assert len(used) >= 15
    assert used <= exported, sorted(used - exported)
    # and the dashboard covers what the service exports (nothing useful left off)
    families = {re.sub(r"_(bucket|count|sum|created|total)$", "", n) for n in exported}
    shown = {re.sub(r"_(bucket|count|sum|created|total)$", "", n) for n in used}
    assert families - shown <= set(), sorted(families - shown)


def test_fleet_metrics_from_an_async_provider_and_a_failing_one(tmp_path: Path) -> None:
    """The fleet wires an async status reader (NATS KV); /metrics is a sync route, so the
    collector waits on the app's loop. A reader that fails reports status_up 0, not a 500."""
    db = tmp_path / "kb"
    Engine.open(db, EngineConfig(encoder="hash", index=IndexConfig(backend="flat"))).close()
    app = create_app(ServerSettings(db=db))
    status = fleet_status()

    async def read_status() -> dict[str, Any]:
        return status

    def broken() -> dict[str, Any]:
        raise ConnectionError("nats: no servers available")

    with TestClient(app) as client:
        assert "edgerag_fleet" not in client.get("/metrics").text  # not in a fleet: no series
        app.state.fleet_status = read_status
        text = client.get("/metrics").text
        assert "edgerag_fleet_status_up 1.0" in text and "edgerag_fleet_green 0.0" in text
        assert 'edgerag_fleet_lag_budget_seconds{modality="text"} 30.0' in text
        app.state.fleet_status = broken
        failed = client.get("/metrics")
        assert failed.status_code == 200 and "edgerag_fleet_status_up 0.0" in failed.text
