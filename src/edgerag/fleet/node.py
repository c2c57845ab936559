"""The node process: engine + replication + drift checks + search responder + ingest worker.

Replica state machine (per shard held by this node)::

    syncing ──complete + verified──► serving ──lag over budget / cut off / drift──┐
         ▲                                   ▲                                          ▼
         │                                   └──────verified────── verifying ◄── quarantined
         │                                                            ▲  (reconciling when the
         └── new replica (snapshot + log catch-up)                    │   cause was drift)
                                                                      └── retry (policy.retries,
                                                                          then "failed": stays out)

Only ``serving`` replicas are in the shard's read queue group; the responder also refuses
requests while the node's own loop has been stalled (a process resumed after SIGSTOP answers
nothing until it has caught up and been verified).

*Complete* is proven from the replica's own store: its stored log position per modality must
reach the shard's high-water mark as observed when the recovery began (``fleet.positions``).
A drift check that sampled nothing is "unknown", which never counts as verified: it is only
accepted for a replica whose completeness the positions already prove.

A node whose encoders differ from the fleet's (``fleet.encoders``) is ``refused``: it
heartbeats its reason, but holds no replica, answers nothing, ingests nothing, publishes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgerag.engine import Engine
from edgerag.errors import FleetError
from edgerag.fleet.drift import DriftChecker, DriftReport, shard_documents
from edgerag.fleet.encoders import EncoderGuard, engine_encoders, mismatches
from edgerag.fleet.erase import Erasure, await_replicas, publish_delete, resolve
from edgerag.fleet.ingest_stream import IngestWorker
from edgerag.fleet.nats import check_token, connect
from edgerag.fleet.positions import replay_gap
from edgerag.fleet.replication import Publisher, Replicator
from edgerag.fleet.router import Responder
from edgerag.fleet.sharding import assign
from edgerag.fleet.shardmap import SERVING, FleetConfig, FleetView, Membership
from edgerag.store.ops import DELETE, Op

logger = logging.getLogger(__name__)

CATCHING_UP, QUARANTINED, RECONCILING, VERIFYING, FAILED, REFUSED = (
    "syncing",
    "quarantined",
    "reconciling",
    "verifying",
    "failed",
    "refused",
)


@dataclass
class ReplicaState:
    """Health of one shard replica on this node."""

    shard: int
    state: str = CATCHING_UP
    reason: str = "new replica"
    since: float = field(default_factory=time.time)
    needs_reconcile: bool = False
    attempts: int = 0
    quarantines: int = 0
    busy: bool = False
    drift: dict[str, DriftReport] = field(default_factory=dict)
    history: list[tuple[float, str, str]] = field(default_factory=list)

    def set(self, state: str, reason: str = "") -> None:
        if state == self.state and reason == self.reason:
            return
        logger.info("shard %d: %s → %s %s", self.shard, self.state, state, reason)
        self.state, self.reason, self.since = state, reason, time.time()
        self.history = [*self.history[-19:], (round(self.since, 3), state, reason)]


class FleetNode:
    """One fleet node. Use :meth:`start` / :meth:`stop` inside a running event loop.

    Args:
        engine: the node's collection.
        nats_url: NATS server (JetStream enabled).
        node_id: stable id of this node (subject token).
        config: fleet config used if the collection has none in KV yet (first node).
        state_dir: where the publisher keeps its position (the collection dir by default).
        ingest: run a streaming-ingest worker on this node.
        http_url: advertised in the heartbeat (for the fleet view).
    """

    def __init__(
        self,
        engine: Engine,
        nats_url: str,
        node_id: str,
        config: FleetConfig | None = None,
        state_dir: Path | None = None,
        ingest: bool = True,
        http_url: str | None = None,
    ) -> None:
        self.engine = engine
        self.nats_url = nats_url
        self.node_id = check_token("node id", node_id)
        self.requested = config or FleetConfig()
        self.state_dir = state_dir or engine.path
        self.run_ingest = ingest
        self.http_url = http_url
        self.replicas: dict[int, ReplicaState] = {}
        self.tick_s = 0.2
        self._last_tick = time.monotonic()
        self._disconnected_at: float | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._recoveries: set[asyncio.Task[Any]] = set()
        self.started = asyncio.Event()
        self.refused: str | None = None
        self.ingest_worker: IngestWorker | None = None

    # lifecycle ---------------------------------------------------------------------------
    async def start(self) -> FleetNode:
        self.nc = await connect(
            self.nats_url,
            name=f"edgerag-node-{self.node_id}",
            disconnected_cb=self._on_disconnect,
            reconnected_cb=self._on_reconnect,
        )
        self.js = self.nc.jetstream()
        names = self.requested.names
        self.membership = await Membership.open(self.js, names)
        mine = engine_encoders(self.engine.indexes)
        await self.membership.init_config(replace(self.requested, encoders=mine))
        self.config = await self.membership.record_encoders(mine)
        self.names = self.config.names
        self.view = await FleetView(self.membership).start()
        self._loop = asyncio.get_running_loop()
        problems = mismatches(self.config.encoders, mine)
        if problems:
            return await self._start_refused(problems)
        await self.membership.register(self.node_id, {"http": self.http_url, "ts": time.time()})
        guard = EncoderGuard(self.membership, self.config.encoders)
        self.replicator = Replicator(
            self.engine, self.js, self.names, self.node_id, self.config.policies.modalities
        )
        self.drift = DriftChecker(self.engine, self.js, self.names, self.config.shards)
        self.responder = Responder(
            self.nc,
            self.engine,
            self.names,
            self.node_id,
            self.config.shards,
            self.refuse,
            lambda: sorted(self.replicas),
            self.replicator,
        )
        state_file = self.state_dir / "fleet-publisher.json" if self.state_dir else None
        self.publisher = Publisher(
            self.engine,
            self.js,
            self.names,
            self.config.shards,
            self.node_id,
            lambda s: s in self.replicas,
            state_file,
            guard,
        )
        await self._sync_shards(fresh=True)
        await self.responder.listen_node()
        self.engine.listeners.append(self.publisher.notify)
        self._last_tick = time.monotonic()  # starting up is not being cut off
        self._tasks = [
            asyncio.create_task(self.publisher.run()),
            asyncio.create_task(self._health_loop()),
            asyncio.create_task(self._drift_loop()),
            asyncio.create_task(self._map_loop()),
        ]
        if self.run_ingest:
            self.ingest_worker = IngestWorker(
                self.engine, self.js, self.names, self.config.shards, self.node_id, guard=guard
            )
            self._tasks.append(asyncio.create_task(self.ingest_worker.run()))
        self.started.set()
        logger.info("node %s up: shards %s", self.node_id, sorted(self.replicas))
        return self

    async def _start_refused(self, problems: list[str]) -> FleetNode:
        """Encoders differ from the fleet's: say so (log + heartbeat) and do nothing else. The
        node is not registered as a member, so a new node never takes replicas it can't hold."""
        self.refused = "encoder differs from the fleet's: " + "; ".join(problems)
        logger.error(
            "node %s refuses to serve, ingest or publish: %s. Start it with the fleet's "
            "encoder (or upgrade the whole fleet, see docs/notes/fleet.md).",
            self.node_id,
            self.refused,
        )
        self._tasks = [asyncio.create_task(self._refused_loop())]
        self.started.set()
        return self

    async def _refused_loop(self) -> None:
        while True:
            try:
                await self.membership.heartbeat(self.node_id, self.status())
            except Exception as exc:
                logger.debug("heartbeat: %s", exc)
            await asyncio.sleep(self.config.heartbeat_s)

    async def stop(self) -> None:
        if self.refused is not None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.view.stop()
            await self.nc.close()
            return
        if self.publisher.notify in self.engine.listeners:
            self.engine.listeners.remove(self.publisher.notify)
        for task in [*self._tasks, *self._recoveries]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._recoveries, return_exceptions=True)
        await self.replicator.stop()
        await self.view.stop()
        if self.ingest_worker is not None:
            self.ingest_worker.close()
        try:
            await asyncio.wait_for(self.nc.close(), timeout=5)
        except Exception as exc:
            logger.debug("close: %s", exc)

    async def _on_disconnect(self) -> None:
        self._disconnected_at = self._disconnected_at or time.monotonic()

    async def _on_reconnect(self) -> None:
        gone = time.monotonic() - (self._disconnected_at or time.monotonic())
        self._disconnected_at = None
        if gone > self.config.policies.min_lag_s:
            self._quarantine_all(f"NATS connection lost for {gone:.1f} s")

    # shard map ---------------------------------------------------------------------------
    async def _map_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.view.changed.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self.view.changed.clear()
            try:
                await self._sync_shards()
            except Exception as exc:
                logger.debug("shard sync: %s", exc)

    async def _sync_shards(self, fresh: bool = False) -> None:
        members = await self.membership.members() if fresh else dict(self.view.members)
        if self.node_id not in members:  # watcher still syncing (or we were removed): wait
            return
        wanted = assign(self.config.shards, members, self.config.replicas)
        if wanted != self.view.shardmap:
            await self.membership.update_shardmap(self.config)
        mine = {s for s, nodes in wanted.items() if self.node_id in nodes}
        for shard in sorted(mine - set(self.replicas)):
            self.replicas[shard] = ReplicaState(shard)
            await self.replicator.start_shard(shard)
            await self.responder.listen(shard)
        for shard in sorted(set(self.replicas) - mine):
            await self._drop_shard(shard)

    async def _drop_shard(self, shard: int) -> None:
        """The shard moved away: stop serving and consuming it, then evict its documents."""
        self.replicas.pop(shard, None)
        await self.responder.drop(shard)
        await self.replicator.stop_shard(shard, delete=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._evict, shard)

    def _evict(self, shard: int) -> None:
        for doc_id, _ in shard_documents(self.engine, shard, self.config.shards):
            self.engine.apply(Op(kind=DELETE, doc_id=doc_id, origin=f"evict:{self.node_id}"))

    # health ------------------------------------------------------------------------------
    def refuse(self, shard: int) -> str | None:
        """Why this replica must not answer a read of ``shard`` now (None = it may)."""
        replica = self.replicas.get(shard)
        if replica is None:
            return "not a replica of this shard"
        stalled = time.monotonic() - self._last_tick
        if stalled > 5 * self.tick_s:
            return f"node loop stalled {stalled:.1f} s"
        if replica.state != SERVING:
            return f"{replica.state}: {replica.reason}"
        return None

    def quarantine(self, shard: int, reason: str, reconcile: bool = False) -> None:
        replica = self.replicas.get(shard)
        if replica is None:
            return
        replica.needs_reconcile |= reconcile
        if replica.state in (SERVING, CATCHING_UP, VERIFYING):
            replica.quarantines += 1
            replica.set(QUARANTINED, reason)

    def _quarantine_all(self, reason: str) -> None:
        for shard in list(self.replicas):
            self.quarantine(shard, reason)

    async def _health_loop(self) -> None:
        last_beat = 0.0
        while True:
            now = time.monotonic()
            gap = now - self._last_tick
            self._last_tick = now
            if gap > self.config.policies.min_lag_s:
                self._quarantine_all(f"node was cut off for {gap:.1f} s")
            away = now - (self._disconnected_at or now)
            if away > self.config.policies.min_lag_s:
                self._quarantine_all("NATS unreachable beyond the lag budget")
            for shard in list(self.replicas):
                await self._check_replica(shard)
            if now - last_beat >= self.config.heartbeat_s and self.nc.is_connected:
                last_beat = now
                try:
                    await self.membership.heartbeat(self.node_id, self.status())
                except Exception as exc:
                    logger.debug("heartbeat: %s", exc)
            await asyncio.sleep(self.tick_s)

    async def _check_replica(self, shard: int) -> None:
        replica = self.replicas[shard]
        for modality, pos in self.replicator.positions.get(shard, {}).items():
            peak = pos.take_peak()
            budget = self.config.policies[modality].max_lag_s
            # A syncing replica replays old ops by design and serves nothing yet: its lag is
            # the backlog it is working off, not a reason to quarantine it.
            if peak > budget and replica.state != CATCHING_UP:
                self.quarantine(shard, f"{modality} lag {peak:.1f} s over {budget:g} s budget")
        if replica.state == SERVING:
            await self.responder.join(shard)
        else:
            await self.responder.leave(shard)
            if not replica.busy and replica.state != FAILED:
                task = asyncio.create_task(self._recover(shard))
                self._recoveries.add(task)
                task.add_done_callback(self._recoveries.discard)

    async def _catch_up(self, shard: int, replica: ReplicaState) -> None:
        """Wait until this store holds every op of ``shard`` the log had when we started."""
        targets = await self.replicator.high_water(shard)
        stored = min(self.replicator.position(shard, m) for m in targets)
        gap = await replay_gap(self.js, self.names, stored)
        if gap:
            raise RuntimeError(gap)
        if replica.state == CATCHING_UP:
            wanted = {m: s for m, s in targets.items() if s}
            replica.set(CATCHING_UP, f"applying the log up to {wanted or 'nothing'}")
        while not self.replicator.complete(shard, targets):
            await asyncio.sleep(0.1)

    async def _recover(self, shard: int) -> None:
        """Catch up (proven from the store) → (reconcile) → verify → serve; retried."""
        replica = self.replicas[shard]
        replica.busy = True
        try:
            await self._catch_up(shard, replica)
            if replica.needs_reconcile:
                replica.set(RECONCILING, replica.reason)
                await self.drift.reconcile(shard)
            replica.set(VERIFYING, replica.reason)
            problems = await self._verify(shard)
            if self.replicas.get(shard) is not replica:
                return
            if replica.state != VERIFYING:  # quarantined again meanwhile: go round again
                return
            if not problems:
                # Lag seen while catching up is what the recovery just fixed: forget it.
                for pos in self.replicator.positions.get(shard, {}).values():
                    pos.peak_lag_s = pos.lag_s = 0.0
                replica.attempts, replica.needs_reconcile = 0, False
                replica.set(SERVING, self._verdict(replica))
                return
            replica.attempts += 1
            replica.needs_reconcile = True
            retries = min(self.config.policies[m].retries for m in self.config.policies.modalities)
            state = FAILED if replica.attempts > retries else QUARANTINED
            replica.set(state, "; ".join(problems))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("recovery of shard %d failed: %s", shard, exc)
            replica.set(QUARANTINED, f"recovery error: {exc}")
            await asyncio.sleep(1.0)
        finally:
            replica.busy = False

    async def _verify(self, shard: int) -> list[str]:
        problems = []
        for modality in self.config.policies.modalities:
            report = await self.drift.check(shard, modality, self.config.drift_sample)
            self.replicas[shard].drift[modality] = report
            problems += self._judge(report)
        return problems

    @staticmethod
    def _verdict(replica: ReplicaState) -> str:
        """Why a replica may serve: complete by its positions, and what drift says."""
        unknown = sorted(m for m, r in replica.drift.items() if r.verdict == "unknown")
        checked = sum(r.sampled for r in replica.drift.values())
        if checked and not unknown:
            return f"complete; drift verified on {checked} items"
        if checked:
            return (
                f"complete; drift verified on {checked} items, unknown for "
                f"{', '.join(unknown)} (nothing to sample)"
            )
        return "complete; drift unknown (nothing to sample)"

    def _judge(self, report: DriftReport) -> list[str]:
        limit = self.config.policies[report.modality].drift_threshold
        out = []
        if report.mean_deviation > limit:
            out.append(f"{report.modality} drift {report.mean_deviation:.3f} over {limit:g}")
        out += [f"encoder skew ({m})" for m in report.encoder_mismatch]
        return out

    async def _drift_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.drift_interval_s)
            for shard, replica in list(self.replicas.items()):
                if replica.state != SERVING:
                    continue
                try:
                    problems = []
                    for modality in self.config.policies.modalities:
                        report = await self.drift.check(shard, modality, self.config.drift_sample)
                        replica.drift[modality] = report
                        problems += self._judge(report)
                except Exception as exc:
                    logger.debug("drift check of shard %d: %s", shard, exc)
                    continue
                if problems:
                    self.quarantine(shard, "; ".join(problems), reconcile=True)

    # fleet-wide delete -------------------------------------------------------------------
    async def delete_everywhere(self, doc_id: str, wait_s: float = 10.0) -> Erasure:
        """Delete ``doc_id`` on every replica of its shard, wherever it lives.

        A document this node holds is deleted locally first, so the delete is published in
        op-log order after any local write of it not published yet; the log then carries it
        to every replica. A document held elsewhere gets its delete published directly.
        """
        if self.refused is not None:
            raise FleetError(f"node {self.node_id} is refused: {self.refused}")
        loop = asyncio.get_running_loop()
        local = await loop.run_in_executor(None, self._local_doc_id, doc_id)
        if local is not None:
            lsn = await loop.run_in_executor(None, self.engine.delete, local)
            deadline = time.monotonic() + wait_s
            while self.publisher.published_lsn < lsn:
                if time.monotonic() > deadline:  # NATS away: the outbox publishes it later
                    raise FleetError(
                        f"{local!r} is deleted here but not yet in the replication log "
                        "(NATS unreachable?); it is published when the connection is back"
                    )
                await asyncio.sleep(0.05)
            doc_id = local
        else:
            doc_id = await resolve(self.js, self.names, doc_id, self.config.shards)
        erasure = await publish_delete(
            self.js, self.names, doc_id, self.config.shards, self.node_id, local is None
        )
        return await await_replicas(self.view, erasure, wait_s)

    def _local_doc_id(self, doc_id: str) -> str | None:
        for candidate in (doc_id, str(Path(doc_id).resolve())):
            if self.engine.store.document(candidate) is not None:
                return candidate
        return None

    def delete_everywhere_blocking(self, doc_id: str, wait_s: float = 10.0) -> dict[str, Any]:
        """:meth:`delete_everywhere` from another thread (the HTTP service's)."""
        future = asyncio.run_coroutine_threadsafe(
            self.delete_everywhere(doc_id, wait_s), self._loop
        )
        return future.result(timeout=wait_s + 30).to_dict()

    # status ------------------------------------------------------------------------------
    def fleet_status(self) -> dict[str, Any]:
        """The whole fleet as this node sees it (KV view) plus this node's own detail."""
        from edgerag.fleet.status import judge

        fleet = judge(
            self.config,
            dict(self.view.members),
            dict(self.view.shardmap),
            dict(self.view.heartbeats),
        )
        return {"node": self.status(), "fleet": fleet}

    def status(self) -> dict[str, Any]:
        """This node's heartbeat: state, and per shard and modality position, lag and drift."""
        if self.refused is not None:
            return {
                "node": self.node_id,
                "ts": time.time(),
                "state": REFUSED,
                "reason": self.refused,
                "http": None,
                "lsn": self.engine.store.last_lsn(),
                "published": 0,
                "encoders": engine_encoders(self.engine.indexes),
                "ingest": None,
                "shards": {},
            }
        shards = {}
        for shard, replica in sorted(self.replicas.items()):
            positions = self.replicator.positions.get(shard, {})
            modalities = {}
            for modality, pos in positions.items():
                entry = pos.summary()
                report = replica.drift.get(modality)
                entry["position"] = pos.applied_seq
                verdict = report.verdict if report else "unknown"
                entry["drift"] = round(report.mean_deviation, 5) if verdict != "unknown" else None
                entry["drift_verdict"] = verdict
                entry["sampled"] = report.sampled if report else 0
                entry["drift_checked_at"] = report.checked_at if report else None
                modalities[modality] = entry
            shards[str(shard)] = {
                "state": replica.state,
                "reason": replica.reason,
                "since": replica.since,
                "quarantines": replica.quarantines,
                "history": replica.history,
                "in_read_group": self.responder.in_queue(shard),
                # Modalities replayed at start because the store was behind its consumer.
                "replayed": self.replicator.rebootstrapped.get(shard, []),
                "served": self.responder.served.get(shard, 0),
                "modalities": modalities,
            }
        states = {r.state for r in self.replicas.values()}
        return {
            "node": self.node_id,
            "ts": time.time(),
            "state": SERVING if states == {SERVING} else (sorted(states)[0] if states else "idle"),
            "http": self.http_url,
            "lsn": self.engine.store.last_lsn(),
            "published": self.publisher.published,
            "encoders": engine_encoders(self.engine.indexes),
            "ingest": self.ingest_worker.counts if self.ingest_worker else None,
            "shards": shards,
        }


# --------------------------------------------------------------------------- process entry
def run_node(
    engine: Engine,
    nats_url: str,
    node_id: str,
    config: FleetConfig | None = None,
    http_port: int | None = None,
    ingest: bool = True,
    stop: threading.Event | None = None,
) -> None:
    """Run a node until ``stop`` is set or the process is interrupted (CLI ``edgerag node``)."""
    http_url = f"http://127.0.0.1:{http_port}" if http_port else None
    node = FleetNode(engine, nats_url, node_id, config, ingest=ingest, http_url=http_url)
    if http_port:
        # Import the web stack before the event loop runs: seconds of imports inside it
        # would stall the node's health loop, which then reads as being cut off.
        _preload_http()

    async def main() -> None:
        await node.start()
        if os.environ.get("EDGERAG_DEBUG_TASKS"):
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, _dump_tasks)
        if http_port and node.refused is None:
            start_http(engine, node, http_port)
        # BM25's in-memory index is built beside the first searches, not by the first one
        engine.lexical.prepare(background=True)
        print(f"READY {node_id} shards={sorted(node.replicas)}", flush=True)  # noqa: T201
        try:
            while stop is None or not stop.is_set():
                await asyncio.sleep(0.2)
        finally:
            await node.stop()

    asyncio.run(main())


def _preload_http() -> None:
    try:
        import uvicorn  # noqa: F401

        from edgerag.server.app import create_app  # noqa: F401
    except ImportError:  # start_http says so
        pass


def _dump_tasks() -> None:
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)


def start_http(engine: Engine, node: FleetNode, port: int) -> threading.Thread | None:
    """Serve the HTTP service (``edgerag.server.app.create_app``) beside the node, when it is
    installed; its page shows ``app.state.fleet_status()`` (this node + the fleet verdict)."""
    try:
        import uvicorn

        from edgerag.server.app import create_app
        from edgerag.server.settings import ServerSettings
    except ImportError as exc:
        logger.warning("HTTP service not available (%s); running the node without it", exc)
        return None
    if engine.path is None:
        logger.warning("HTTP service needs an on-disk collection; running without it")
        return None
    app = create_app(ServerSettings(db=engine.path, port=port), engine=engine)
    app.state.fleet_status = node.fleet_status
    app.state.fleet_delete = node.delete_everywhere_blocking
    originals = app.state.originals

    def forget(op: Op) -> None:
        """A delete that arrived by replication also scrubs the original upload and caches."""
        if op.kind == DELETE and op.origin and not op.origin.startswith("evict:"):
            originals.remove(op.doc_id)
            cache = getattr(engine, "cache", None)
            if cache is not None:
                cache.clear()

    engine.listeners.append(forget)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="edgerag-http", daemon=True)
    thread.start()
    return thread
