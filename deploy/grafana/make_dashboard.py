"""Writes deploy/grafana/edgerag.json (run: python deploy/grafana/make_dashboard.py).

A Grafana dashboard over the metrics a node's /metrics exports; import it in Grafana
(Dashboards → Import) and pick your Prometheus data source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}
OUT = Path(__file__).with_name("edgerag.json")


def target(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(
    title: str,
    targets: list[dict[str, Any]],
    grid: tuple[int, int, int, int],
    kind: str = "timeseries",
    unit: str = "short",
    description: str = "",
    thresholds: list[tuple[str, float | None]] | None = None,
) -> dict[str, Any]:
    x, y, w, h = grid
    steps = [{"color": c, "value": v} for c, v in (thresholds or [("green", None)])]
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [dict(t, refId=chr(65 + i)) for i, t in enumerate(targets)],
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {},
    }


def row(title: str, y: int) -> dict[str, Any]:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
        "panels": [],
    }  # noqa: E501


SEARCH_P = 'histogram_quantile({q}, sum by (le) (rate(edgerag_stage_seconds_bucket{{instance=~"$instance", op="search", stage="total"}}[$__rate_interval])))'  # noqa: E501


def panels() -> list[dict[str, Any]]:
    inst = 'instance=~"$instance"'
    return [
        row("Queries", 0),
        panel(
            "Search latency (p50, p95, p99)",
            [target(SEARCH_P.format(q=q), f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)],
            (0, 1, 12, 8),
            unit="s",
            description="The alert EdgeragQueryP95OverBudget fires over 250 ms for 10 min.",
            thresholds=[("green", None), ("red", 0.25)],
        ),
        panel(
            "Search p95 by stage",
            [
                target(
                    f'histogram_quantile(0.95, sum by (le, stage) (rate(edgerag_stage_seconds_bucket{{{inst}, op="search"}}[$__rate_interval])))',  # noqa: E501
                    "{{stage}}",
                )
            ],
            (12, 1, 12, 8),
            unit="s",
        ),
        panel(
            "Requests by route and status",
            [
                target(
                    f"sum by (route, status) (rate(edgerag_http_requests_total{{{inst}}}[$__rate_interval]))",  # noqa: E501
                    "{{route}} {{status}}",
                )
            ],
            (0, 9, 12, 8),
            unit="reqps",
        ),
        panel(
            "HTTP latency p95 by route",
            [
                target(
                    f"histogram_quantile(0.95, sum by (le, route) (rate(edgerag_http_request_seconds_bucket{{{inst}}}[$__rate_interval])))",  # noqa: E501
                    "{{route}}",
                )
            ],
            (12, 9, 12, 8),
            unit="s",
        ),
        row("Collection", 17),
        panel(
            "Documents",
            [target(f"sum(edgerag_documents{{{inst}}})", "documents")],
            (0, 18, 4, 6),
            kind="stat",
        ),
        panel(
            "Items by modality",
            [target(f"sum by (modality) (edgerag_items{{{inst}}})", "{{modality}}")],
            (4, 18, 8, 6),
            kind="bargauge",
        ),
        panel(
            "Op-log LSN and vectors",
            [
                target(f"max(edgerag_oplog_lsn{{{inst}}})", "op-log LSN"),
                target(f"sum by (space) (edgerag_index_vectors{{{inst}}})", "vectors {{space}}"),
                target(
                    f"max by (space) (edgerag_index_applied_lsn{{{inst}}})", "applied {{space}}"
                ),
            ],
            (12, 18, 12, 6),
        ),
        panel(
            "Index lag behind the op log",
            [target(f"max by (space) (edgerag_index_lag{{{inst}}})", "{{space}}")],
            (0, 24, 12, 6),
            unit="none",
            thresholds=[("green", None), ("orange", 1)],
        ),
        panel(
            "Ingested inputs by outcome",
            [
                target(
                    f"sum by (outcome) (rate(edgerag_ingest_documents_total{{{inst}}}[$__rate_interval]))",  # noqa: E501
                    "{{outcome}}",
                )
            ],
            (12, 24, 12, 6),
            unit="ops",
            description="EdgeragIngestErrors fires when errors are over 5% for 5 min.",
        ),
        row("Fleet", 30),
        panel(
            "Fleet green",
            [target("min(edgerag_fleet_green)", "green")],
            (0, 31, 4, 6),
            kind="stat",
            thresholds=[("red", None), ("green", 1)],
        ),
        panel(
            "Nodes up",
            [target("max by (node) (edgerag_fleet_node_up)", "{{node}}")],
            (4, 31, 10, 6),
            kind="state-timeline",
            thresholds=[("red", None), ("green", 1)],
        ),
        panel(
            "Last heartbeat age",
            [target("max by (node) (edgerag_fleet_node_heartbeat_age_seconds)", "{{node}}")],
            (14, 31, 10, 6),
            unit="s",
        ),
        panel(
            "Replica lag / its modality's budget",
            [
                target(
                    "max by (shard, node, modality) (edgerag_fleet_replica_lag_seconds) / on (modality) group_left max by (modality) (edgerag_fleet_lag_budget_seconds)",  # noqa: E501
                    "shard {{shard}} {{node}} {{modality}}",
                )
            ],
            (0, 37, 12, 8),
            unit="percentunit",
            description="1.0 = the modality's max lag (text 30 s, image/audio 5 s by default).",
            thresholds=[("green", None), ("red", 1)],
        ),
        panel(
            "Replica drift / threshold",
            [
                target(
                    "max by (shard, node, modality) (edgerag_fleet_replica_drift) / on (modality) group_left max by (modality) (edgerag_fleet_drift_threshold)",  # noqa: E501
                    "shard {{shard}} {{node}} {{modality}}",
                )
            ],
            (12, 37, 12, 8),
            unit="percentunit",
            thresholds=[("green", None), ("red", 1)],
        ),
        panel(
            "Replicas serving / quarantined",
            [
                target("sum(max by (shard, node) (edgerag_fleet_replica_serving))", "serving"),
                target(
                    "sum(max by (shard, node) (edgerag_fleet_replica_quarantined))", "quarantined"
                ),
                target(
                    "sum(max by (shard, node) (edgerag_fleet_replica_quarantines))",
                    "quarantines (total)",
                ),
            ],
            (0, 45, 12, 6),
        ),
        panel(
            "Fleet status readable",
            [target("min by (instance) (edgerag_fleet_status_up)", "{{instance}}")],
            (12, 45, 12, 6),
            kind="state-timeline",
            thresholds=[("red", None), ("green", 1)],
        ),
        row("Upstream tier", 51),
        panel(
            "Upstream lag (ops not yet acknowledged)",
            [target(f"max by (upstream) (edgerag_upstream_lag_lsn{{{inst}}})", "{{upstream}}")],
            (0, 52, 8, 6),
            unit="none",
            description="EdgeragUpstreamLag fires when the oldest unshipped op is over 15 min old.",
        ),
        panel(
            "Upstream lag (age of the oldest unshipped op)",
            [target(f"max by (upstream) (edgerag_upstream_lag_seconds{{{inst}}})", "{{upstream}}")],
            (8, 52, 8, 6),
            unit="s",
        ),
        panel(
            "Upstream shipped LSN",
            [target(f"max by (upstream) (edgerag_upstream_shipped_lsn{{{inst}}})", "{{upstream}}")],
            (16, 52, 8, 6),
            unit="none",
        ),
    ]


def dashboard() -> dict[str, Any]:
    return {
        "title": "edgerag",
        "uid": "edgerag",
        "description": "edgerag nodes and fleet: query latency, collection, ingest, replicas.",
        "tags": ["edgerag"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                },
                {
                    "name": "instance",
                    "label": "Node",
                    "type": "query",
                    "datasource": DS,
                    "query": "label_values(edgerag_documents, instance)",
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels(),
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {OUT}")  # noqa: T201
