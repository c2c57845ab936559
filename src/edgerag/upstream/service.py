"""The upstream tier inside a long-running process (``edgerag serve``, ``edgerag node``).

Starts one sink thread per registered upstream, shares the connected backend with federated
searches, and exposes the lag to Prometheus. A collection with no upstream costs nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from edgerag.upstream.base import Upstream, open_upstream
from edgerag.upstream.sink import Sink, upstream_status
from edgerag.upstream.state import UpstreamState

if TYPE_CHECKING:
    from edgerag.engine import Engine

logger = logging.getLogger(__name__)


class UpstreamService:
    """Sinks and search backends of one engine's upstreams."""

    def __init__(
        self, engine: Engine, run_sinks: bool = True, retention_every_s: float = 30.0
    ) -> None:
        self.engine = engine
        self.state = UpstreamState(engine.store)
        self.backends: dict[str, Upstream] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        for name in self.state.names():
            try:
                backend = open_upstream(self.state.spec(name))
            except Exception as exc:  # a missing extra or a bad target: serve the edge anyway
                logger.warning("upstream %s unavailable: %s", name, exc)
                self.state.mark_error(name, str(exc)[:500])
                continue
            self.backends[name] = backend
            if run_sinks:
                sink = Sink(engine.store, backend, self.state, name)
                thread = threading.Thread(
                    target=self._run, args=(sink,), name=f"upstream-sink-{name}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
                keeper = threading.Thread(
                    target=self._retain,
                    args=(name, retention_every_s),
                    name=f"upstream-retention-{name}",
                    daemon=True,
                )
                keeper.start()
                self._threads.append(keeper)

    def _run(self, sink: Sink) -> None:
        try:
            sink.run(self._stop)
        except Exception as exc:  # an encoder mismatch: recorded in status, the edge serves on
            logger.error("upstream %s sink stopped: %s", sink.name, exc)

    def _retain(self, name: str, every_s: float) -> None:
        """Apply the upstream's retention policy periodically (a no-op without one)."""
        from edgerag.upstream.retention import evict

        while not self._stop.wait(every_s):
            try:
                evict(self.engine, self.backends[name], self.state, name)
            except Exception as exc:  # upstream down: nothing is acknowledged, nothing evicted
                logger.warning("upstream %s retention skipped: %s", name, type(exc).__name__)

    def backend(self, name: str = "default") -> Upstream | None:
        return self.backends.get(name)

    def status(self) -> list[dict[str, Any]]:
        return [upstream_status(self.engine.store, self.state, n) for n in self.state.names()]

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for backend in self.backends.values():
            backend.close()
        self.state.close()


class UpstreamCollector:
    """Prometheus gauges: ``edgerag_upstream_lag_lsn`` and ``edgerag_upstream_lag_seconds``."""

    def __init__(self, service: UpstreamService) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            rows = self.service.status()
        except Exception:  # closed during shutdown: skip, never break the scrape
            return
        lag = GaugeMetricFamily(
            "edgerag_upstream_lag_lsn", "Ops not yet acknowledged upstream", labels=["upstream"]
        )
        age = GaugeMetricFamily(
            "edgerag_upstream_lag_seconds",
            "Age of the oldest op not yet acknowledged upstream",
            labels=["upstream"],
        )
        shipped = GaugeMetricFamily(
            "edgerag_upstream_shipped_lsn", "Last LSN acknowledged upstream", labels=["upstream"]
        )
        for row in rows:
            lag.add_metric([row["name"]], row["lag_lsn"])
            age.add_metric([row["name"]], row["lag_s"])
            shipped.add_metric([row["name"]], row["shipped_lsn"])
        yield from (lag, age, shipped)
