"""Prometheus metrics on a per-app registry (two apps in one process never collide).

* ``edgerag_http_requests_total{route,method,status}`` and a latency histogram per route;
* ``edgerag_stage_seconds{op,stage}``: per-stage latency from ``SearchResponse.timings_ms`` and
  the answer's timings (encode, ann, bm25, fuse, rerank, retrieve, generate, total, …);
* scrape-time gauges read from the engine: documents, items per modality, op-log LSN, and per
  space the applied LSN, the lag behind the log and the vector count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

STAGE_BUCKETS = (
    0.0002,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    30,
)


class EngineCollector(Collector):
    """Gauges computed from ``engine.stats()`` when Prometheus scrapes."""

    def __init__(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            stats = self._stats()
        except Exception:  # a closed engine during shutdown must not break the scrape
            logger.debug("engine stats unavailable", exc_info=True)
            return
        yield GaugeMetricFamily(
            "edgerag_documents", "Documents in the collection", value=stats["documents"]
        )
        items = GaugeMetricFamily("edgerag_items", "Items by modality", labels=["modality"])
        for modality, n in sorted(stats["items"].items()):
            items.add_metric([modality], n)
        yield items
        yield GaugeMetricFamily("edgerag_oplog_lsn", "Last op-log LSN", value=stats["lsn"])
        applied = GaugeMetricFamily(
            "edgerag_index_applied_lsn", "LSN applied by the index", labels=["space"]
        )
        lag = GaugeMetricFamily(
            "edgerag_index_lag", "Ops the index is behind the op log", labels=["space"]
        )
        vectors = GaugeMetricFamily(
            "edgerag_index_vectors", "Vectors in the index", labels=["space"]
        )
        for space, info in sorted(stats["spaces"].items()):
            applied.add_metric([space], info["applied_lsn"])
            lag.add_metric([space], info["lag"])
            vectors.add_metric([space], info["vectors"])
        yield from (applied, lag, vectors)


class Metrics:
    """The metrics of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "edgerag_http_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "edgerag_http_request_seconds",
            "HTTP request latency (until the response starts)",
            ["route", "method"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "edgerag_stage_seconds",
            "Latency of each retrieval/answer stage",
            ["op", "stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )

    def watch_engine(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self.registry.register(EngineCollector(stats))

    def observe_stages(self, op: str, timings_ms: Mapping[str, float]) -> None:
        for stage, ms in timings_ms.items():
            if isinstance(ms, int | float):
                self.stages.labels(op, stage).observe(ms / 1000.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request by route template (bounded label set) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = _route(scope)
                self.metrics.latency.labels(route, scope["method"]).observe(
                    time.perf_counter() - start
                )
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(_route(scope), scope["method"], str(status)).inc()


_MOUNTS = ("/static", "/docs-assets")


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return str(path)
    raw = scope.get("path", "")
    # Static files are one label per mount, anything unrouted another: never the raw path
    # (cardinality).
    for mount in _MOUNTS:
        if raw.startswith(mount + "/"):
            return mount
    # Plain Starlette routes (FastAPI's /openapi.json) do not record themselves in the scope.
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", ()):
        if isinstance(candidate, Route) and candidate.matches(scope)[0] == Match.FULL:
            return str(candidate.path)
    return "unmatched"
