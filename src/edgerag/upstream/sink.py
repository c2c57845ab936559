"""The upstream sink: tails the op log and ships every change into the upstream collection.

Like the fleet publisher, the local op log *is* the outbox. A step reads the rows past the
durable ``shipped_lsn``, rebuilds each touched document's current state
(:meth:`Store.materialize`), upserts its items by key into each space's upstream collection,
deletes keys a re-ingest dropped, erases deleted documents, and only then moves ``shipped_lsn``.
A crash anywhere re-ships at most that one batch, and re-shipping is idempotent.

Backpressure: the sink holds one batch in memory at a time; a slow or absent upstream makes the
lag grow (``status()``), never the edge's writes wait. Deletes that only *remove from the edge*
(retention eviction, a fleet node dropping a shard it does not own) are not erasures and are not
shipped: upstream keeps those items, which is the point of the cold tier.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any

from edgerag.store.ops import DELETE, ItemRecord, Op
from edgerag.store.sqlite import Store
from edgerag.upstream.base import Point, Upstream, UpstreamMismatchError, redact
from edgerag.upstream.state import UpstreamState

logger = logging.getLogger(__name__)

# Op origins of local-only removals (see the module docstring).
RETENTION_ORIGIN = "retention:"
NOT_ERASURE = (RETENTION_ORIGIN, "evict:")


def item_payload(op: Op, item: ItemRecord, ingested_at: float) -> dict[str, Any]:
    doc = op.document
    assert doc is not None
    return {
        "doc_id": op.doc_id,
        "item_id": item.item_id,
        "source": doc.source,
        "title": doc.title,
        "modality": item.modality,
        "doc_modality": doc.modality,
        "mime": doc.mime,
        "position": item.position,
        "page": item.page,
        "char_start": item.char_start,
        "char_end": item.char_end,
        "t_start": item.t_start,
        "t_end": item.t_end,
        "text": item.text,
        "metadata": {**doc.metadata, **item.metadata},
        "content_hash": doc.content_hash,
        "ingested_at": ingested_at,
    }


class Sink:
    """Ships one collection's op log to one upstream.

    Args:
        store: the collection's store (read only, plus the ``upstreams`` table).
        upstream: the connected backend.
        state: durable sink state.
        name: the upstream's name in ``state``.
        batch: op-log rows per step (each step is one acknowledged shipment).
    """

    def __init__(
        self,
        store: Store,
        upstream: Upstream,
        state: UpstreamState,
        name: str = "default",
        batch: int = 256,
    ) -> None:
        self.store = store
        self.upstream = upstream
        self.state = state
        self.name = name
        self.batch = batch
        self.last_error: str | None = None

    # one shipment -----------------------------------------------------------------------
    def step(self) -> int:
        """Ship the next batch of ops; return how many op-log rows it covered (0: caught up)."""
        shipped = self.state.shipped_lsn(self.name)
        rows = self.store.oplog(shipped, self.batch)
        if not rows:
            return 0
        for spec in self.store.spaces().values():
            self.upstream.ensure_space(spec)
        latest: dict[str, dict[str, Any]] = {}
        touched: dict[str, set[int]] = defaultdict(set)
        for row in rows:
            latest[row["doc_id"]] = row
            touched[row["doc_id"]].update(int(k) for k in row["keys"])
        points: dict[str, list[Point]] = defaultdict(list)
        stale: list[int] = []
        erase: list[str] = []
        for doc_id in latest:
            op = self.store.materialize(doc_id)
            if op.kind == DELETE:
                if not self._local_only_removal(doc_id):
                    erase.append(doc_id)
                continue
            self._collect(op, points)
            stale += sorted(touched[doc_id] - {it.key for it in op.items})
        self._ship(points, stale, erase)
        self.state.mark_shipped(self.name, rows[-1]["lsn"], len(rows))
        return len(rows)

    def _local_only_removal(self, doc_id: str) -> bool:
        """True when the document's last op removed it from the edge only (not an erasure)."""
        kind, origin = self.state.last_op(doc_id)
        return kind == DELETE and origin.startswith(NOT_ERASURE)

    def _collect(self, op: Op, points: dict[str, list[Point]]) -> None:
        doc = self.store.document(op.doc_id)
        ingested_at = float(doc["created"]) if doc else op.ts
        payloads = {it.key: item_payload(op, it, ingested_at) for it in op.items}
        for space, sv in op.vectors.items():
            for key, vector in zip(sv.keys.tolist(), sv.vectors, strict=True):
                payload = {**payloads[key], "encoder": sv.encoder, "encoder_version": sv.version}
                points[space].append(Point(key, vector, payload))

    def _ship(self, points: dict[str, list[Point]], stale: list[int], erase: list[str]) -> None:
        for space, batch in points.items():
            self.upstream.upsert(space, batch)
        for space in list(self.upstream.ensured):
            self.upstream.delete_keys(space, stale)
            for doc_id in erase:
                self.upstream.delete_doc(space, doc_id)

    # loops ------------------------------------------------------------------------------
    def sync_once(self) -> int:
        """Ship until caught up with the op log as it is now; return rows shipped."""
        total = 0
        while n := self.step():
            total += n
        return total

    def run(self, stop: threading.Event, interval: float = 0.5, max_backoff: float = 30.0) -> None:
        """Ship forever (until ``stop``); an unreachable upstream is retried with backoff while
        the lag grows. An encoder mismatch is a configuration error: it ends the loop."""
        backoff = interval
        while not stop.is_set():
            try:
                shipped = self.step()
            except UpstreamMismatchError as exc:
                self._record(str(exc))
                raise
            except Exception as exc:  # upstream down or slow: keep the outbox, retry later
                message = self._record(f"{type(exc).__name__}: {exc}")
                logger.warning("upstream %s: %s (retry in %.1fs)", self.name, message, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff)
                continue
            backoff = interval
            if self.last_error is not None:
                self._record(None)
            if not shipped:
                stop.wait(interval)

    def _record(self, error: str | None) -> str | None:
        if error is not None:  # never let a credential in a URL reach logs or status
            target = self.upstream.spec.target
            error = error.replace(target, redact(target))[:500]
        self.last_error = error
        try:
            self.state.mark_error(self.name, error)
        except Exception as exc:  # the store is busy: the error is still in memory
            logger.debug("could not record upstream error: %s", exc)
        return error

    # status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return upstream_status(self.store, self.state, self.name)


def upstream_status(store: Store, state: UpstreamState, name: str) -> dict[str, Any]:
    """Lag of one upstream: ``lag_lsn`` (ops not yet acknowledged) and ``lag_s`` (age of the
    oldest of them; 0 when caught up)."""
    row = state.row(name)
    last = store.last_lsn()
    pending = store.oplog(row["shipped_lsn"], 1)
    lag_s = max(time.time() - pending[0]["ts"], 0.0) if pending else 0.0
    return {
        "name": name,
        "kind": row["kind"],
        "target": redact(row["target"]),
        "collection": row["collection"],
        "shipped_lsn": row["shipped_lsn"],
        "last_lsn": last,
        "lag_lsn": last - row["shipped_lsn"],
        "lag_s": round(lag_s, 3),
        "shipped_ops": row["shipped_ops"],
        "shipped_at": row["shipped_ts"],
        "error": row["error"],
    }
