"""Metrics for operations (deploy/prometheus/alerts.yml, deploy/grafana/edgerag.json).

* ``edgerag_ingest_documents_total{outcome}``: inputs ingested over HTTP, by outcome
  (added, unchanged, error) — the ingest-error alert divides errors by all of them;
* ``edgerag_fleet_*``: the fleet status view (``/fleet/status``) as gauges, read at scrape time
  when this node is in a fleet: node up and heartbeat age, replica serving / quarantined, per
  modality lag and drift, and each modality's budgets, so an alert compares a replica's lag
  with its own modality's policy.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

QUARANTINED = "quarantined"


class FleetCollector(Collector):
    """Gauges from the fleet status provider the CLI installs on ``app.state.fleet_status``."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def _status(self) -> dict[str, Any] | None:
        provider = getattr(self._state, "fleet_status", None)
        if provider is None:
            return None
        if inspect.iscoroutinefunction(provider):
            import anyio.from_thread

            # /metrics is a sync route: this runs in anyio's worker thread.
            return anyio.from_thread.run(provider)  # type: ignore[no-any-return]
        result = provider()
        if inspect.isawaitable(result):
            import anyio.from_thread

            async def wait() -> Any:
                return await result

            result = anyio.from_thread.run(wait)
        return result  # type: ignore[no-any-return]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            status = self._status()
        except Exception:  # NATS down or slow: say so, never break the scrape
            logger.warning("fleet status unavailable for /metrics", exc_info=True)
            yield GaugeMetricFamily(
                "edgerag_fleet_status_up", "1 if the fleet status could be read", value=0
            )
            return
        if status is None:
            return
        yield GaugeMetricFamily(
            "edgerag_fleet_status_up", "1 if the fleet status could be read", value=1
        )
        yield from fleet_families(status)


def fleet_families(status: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    """The status document (``edgerag.fleet.status.judge``) as gauge families."""
    yield GaugeMetricFamily(
        "edgerag_fleet_green", "1 when the fleet is green", value=int(bool(status["green"]))
    )
    up = GaugeMetricFamily("edgerag_fleet_node_up", "1 if the node heartbeats", labels=["node"])
    age = GaugeMetricFamily(
        "edgerag_fleet_node_heartbeat_age_seconds",
        "Seconds since the last heartbeat",
        labels=["node"],
    )
    for node, info in sorted(status["nodes"].items()):
        up.add_metric([node], int(info["state"] != "unreachable"))
        if info.get("heartbeat_age_s") is not None:
            age.add_metric([node], info["heartbeat_age_s"])
    labels = ["shard", "node"]
    serving = GaugeMetricFamily(
        "edgerag_fleet_replica_serving", "1 if the replica serves reads", labels=labels
    )
    quarantined = GaugeMetricFamily(
        "edgerag_fleet_replica_quarantined", "1 if the replica is quarantined", labels=labels
    )
    quarantines = GaugeMetricFamily(
        "edgerag_fleet_replica_quarantines", "Times the replica was quarantined", labels=labels
    )
    lag = GaugeMetricFamily(
        "edgerag_fleet_replica_lag_seconds",
        "Replica lag behind the log",
        labels=[*labels, "modality"],
    )
    drift = GaugeMetricFamily(
        "edgerag_fleet_replica_drift",
        "Mean cosine deviation from the log",
        labels=[*labels, "modality"],
    )
    for shard, info in sorted(status["shards"].items(), key=lambda kv: int(kv[0])):
        for node, rep in sorted(info["replicas"].items()):
            serving.add_metric([shard, node], int(rep["state"] == "serving"))
            quarantined.add_metric([shard, node], int(rep["state"] == QUARANTINED))
            if rep.get("quarantines") is not None:
                quarantines.add_metric([shard, node], rep["quarantines"])
            for modality, m in sorted(rep.get("modalities", {}).items()):
                if m.get("lag_s") is not None:
                    lag.add_metric([shard, node, modality], m["lag_s"])
                if m.get("drift") is not None:
                    drift.add_metric([shard, node, modality], m["drift"])
    yield from (up, age, serving, quarantined, quarantines, lag, drift)
    budget = GaugeMetricFamily(
        "edgerag_fleet_lag_budget_seconds",
        "Max lag of the modality's sync policy",
        labels=["modality"],
    )
    threshold = GaugeMetricFamily(
        "edgerag_fleet_drift_threshold",
        "Drift threshold of the modality's policy",
        labels=["modality"],
    )
    for modality, policy in sorted(status["config"]["policies"].items()):
        budget.add_metric([modality], policy["max_lag_s"])
        threshold.add_metric([modality], policy["drift_threshold"])
    yield from (budget, threshold)


class OpsMetrics:
    """Registered on the app's metrics registry by :func:`install`."""

    def __init__(self, registry: Any, state: Any) -> None:
        self.ingested = Counter(
            "edgerag_ingest_documents",
            "Inputs ingested over HTTP, by outcome (added, unchanged, error)",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("added", "unchanged", "error"):
            self.ingested.labels(outcome)  # every series exists from the start (rate() works)
        registry.register(FleetCollector(state))

    def count_ingest(self, report: dict[str, Any]) -> None:
        self.ingested.labels("added").inc(len(report["added"]))
        self.ingested.labels("unchanged").inc(len(report["unchanged"]))
        self.ingested.labels("error").inc(len(report["errors"]))


def install(app: Any, metrics: Any) -> OpsMetrics:
    ops = OpsMetrics(metrics.registry, app.state)
    app.state.ops_metrics = ops
    return ops
