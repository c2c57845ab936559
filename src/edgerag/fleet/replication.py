"""Replication: local writes → JetStream (publisher), JetStream → local engine (replicator).

**Publisher (outbox).** The local op log *is* the outbox: a tailer reads rows past the last
published LSN (persisted beside the collection), rebuilds each touched document's current state
with :meth:`Store.materialize` and publishes it to ``edgerag.<c>.ops.<shard>.<modality>.<doc>``.
So a crash between the local commit and the publish loses nothing: the tailer republishes after
restart. Only local writes (``origin == ""``) are published; ops that arrived by replication,
reconciliation or eviction carry an origin and never echo. A local op whose content hash equals
the log's canonical one is not a content change (a local re-embed, or an echo) and is not
published either: the log stays the single source of canonical vectors, which is what the drift
check compares against.

**Replicator.** Each replica has one durable pull consumer per (shard, modality), so an image
backlog never waits behind a long text backlog and each modality reports its own position and
lag. Ops are applied through :meth:`Engine.apply` — the same path as a local write — and acked
after they are applied (at-least-once delivery + idempotent ops = exactly-once effect).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import numpy as np

from edgerag._optional import require
from edgerag.errors import FleetError
from edgerag.fleet.nats import Names
from edgerag.fleet.positions import StoredPositions, high_water
from edgerag.fleet.sharding import doc_subject_token, shard_for
from edgerag.store.ops import DELETE, UPSERT, Op
from edgerag.types import Modality

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from edgerag.engine import Engine
    from edgerag.fleet.encoders import EncoderGuard

logger = logging.getLogger(__name__)

MODALITIES = [m.value for m in Modality]
H_DOC, H_HASH, H_KIND, H_TS, H_ORIGIN = (
    "Edgerag-Doc",
    "Edgerag-Hash",
    "Edgerag-Kind",
    "Edgerag-Ts",
    "Edgerag-Origin",
)


def op_modality(op: Op) -> str:
    """The subject modality of an upsert: its document's modality (ops are per-document atomic,
    so a document's items travel together on the subject of the document's modality)."""
    return op.document.modality if op.document else Modality.TEXT.value


def op_subject(names: Names, op: Op, shards: int, modality: str | None = None) -> str:
    shard = shard_for(op.doc_id, shards)
    return names.ops(shard, modality or op_modality(op), doc_subject_token(op.doc_id))


async def publish_op(
    js: JetStreamContext,
    names: Names,
    op: Op,
    shards: int,
    origin: str,
    msg_id: str | None = None,
    modality: str | None = None,
) -> int:
    """Publish one op to the replication log; returns its stream sequence."""
    op.origin = op.origin or origin
    headers = {
        H_DOC: quote(op.doc_id, safe=""),
        H_KIND: op.kind,
        H_TS: repr(time.time()),
        H_ORIGIN: op.origin,
    }
    if op.document:
        headers[H_HASH] = op.document.content_hash
    if msg_id:
        headers["Nats-Msg-Id"] = msg_id
    subject = op_subject(names, op, shards, modality)
    ack = await js.publish(subject, op.to_bytes(), headers=headers, stream=names.ops_stream)
    return int(ack.seq)


async def canonical(
    js: JetStreamContext, names: Names, doc_id: str, shards: int, modality: str
) -> tuple[Op | None, dict[str, str]]:
    """The log's last op for ``doc_id`` on ``modality``'s subject (None when there is none)."""
    errors = require("nats.js.errors")
    subject = names.ops(shard_for(doc_id, shards), modality, doc_subject_token(doc_id))
    try:
        msg = await js.get_last_msg(names.ops_stream, subject, direct=True)
    except errors.NotFoundError:
        return None, {}
    return Op.from_bytes(msg.data or b""), dict(msg.headers or {})


class Publisher:
    """Tails the local op log and publishes local writes (see the module docstring).

    Args:
        engine: the node's engine.
        js: JetStream context.
        names: subjects of the collection.
        shards: shard count.
        node_id: this node; becomes each published op's origin.
        owns: ``owns(shard)``; documents of shards this node does not hold are evicted
            locally once published (a node may accept a write for any shard).
        state_file: where the published LSN is persisted (None: memory only).
        guard: refuses ops whose vectors are not the fleet's encoders (never published).
    """

    def __init__(
        self,
        engine: Engine,
        js: JetStreamContext,
        names: Names,
        shards: int,
        node_id: str,
        owns: Callable[[int], bool],
        state_file: Path | None,
        guard: EncoderGuard | None = None,
    ) -> None:
        self.engine = engine
        self.guard = guard
        self.js = js
        self.names = names
        self.shards = shards
        self.node_id = node_id
        self.owns = owns
        self.state_file = state_file
        self.published_lsn = self._load()
        self.published = 0
        self.wake = asyncio.Event()

    def _load(self) -> int:
        published = 0
        if self.state_file and self.state_file.exists():
            published = int(json.loads(self.state_file.read_text()).get("published_lsn", 0))
        last = self.engine.store.last_lsn()
        if published > last:
            # The store was restored from an older copy than the state file: its next local
            # writes reuse LSNs we already passed and would never be published.
            logger.warning("publisher position %d is past the store's LSN %d", published, last)
            published = last
        return published

    def _save(self) -> None:
        if self.state_file is None:
            return
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"published_lsn": self.published_lsn}))
        os.replace(tmp, self.state_file)

    def notify(self, _op: Op | None = None) -> None:
        """Engine listener (any thread): wake the tailer."""
        loop = getattr(self, "_loop", None)
        if loop is not None:
            loop.call_soon_threadsafe(self.wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS down: keep the outbox, retry
                logger.warning("publisher: %s (will retry)", exc)
                await asyncio.sleep(0.5)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=0.5)
            except TimeoutError:
                pass

    async def drain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            rows = await loop.run_in_executor(
                None, self.engine.store.oplog, self.published_lsn, 200
            )
            if not rows:
                return
            for row in rows:
                if row["origin"] == "":
                    await self._publish_row(row)
                self.published_lsn = row["lsn"]
            self._save()

    async def _publish_row(self, row: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        doc_id = row["doc_id"]
        op = await loop.run_in_executor(None, self.engine.store.materialize, doc_id)
        msg_id = f"{self.node_id}:{row['lsn']}"
        if op.kind == UPSERT:
            modality = op_modality(op)
            current, headers = await canonical(self.js, self.names, doc_id, self.shards, modality)
            if current is not None and headers.get(H_HASH) == op.document.content_hash:  # type: ignore[union-attr]
                return  # an echo or a local re-embed: not a content change
            if self.guard is not None:
                try:
                    await self.guard.check(op)
                except FleetError as exc:
                    logger.error("publisher: %s", exc)
                    return
            op.origin, op.origin_lsn = self.node_id, row["lsn"]
            await publish_op(self.js, self.names, op, self.shards, self.node_id, msg_id)
            self.published += 1
            if not self.owns(shard_for(doc_id, self.shards)):
                evict = Op(kind=DELETE, doc_id=doc_id, origin=f"evict:{self.node_id}")
                await loop.run_in_executor(None, self.engine.apply, evict)
            return
        for modality in MODALITIES:  # a delete goes where the document's upserts went
            current, headers = await canonical(self.js, self.names, doc_id, self.shards, modality)
            if current is not None and current.kind != DELETE:
                op.origin, op.origin_lsn = self.node_id, row["lsn"]
                await publish_op(
                    self.js,
                    self.names,
                    op,
                    self.shards,
                    self.node_id,
                    f"{msg_id}:{modality}",
                    modality,
                )
                self.published += 1


class DeliveryGap(Exception):
    """The consumer delivered messages this subscription never received."""


@dataclass
class Position:
    """Applied position and lag of one (shard, modality) consumer on this replica."""

    applied_seq: int = 0
    consumer_seq: int = 0  # last delivery sequence seen: a gap = deliveries we never got
    applied: int = 0
    pending: int = 0
    lag_s: float = 0.0
    peak_lag_s: float = 0.0  # high-water mark since the health loop last looked
    last_fetch: float = 0.0
    delays: deque[float] = field(default_factory=lambda: deque(maxlen=5000))

    def take_peak(self) -> float:
        peak, self.peak_lag_s = max(self.peak_lag_s, self.lag_s), self.lag_s
        return peak

    def summary(self) -> dict[str, Any]:
        recent = np.array(self.delays, dtype=np.float64) * 1000 if self.delays else None
        return {
            "applied_seq": self.applied_seq,
            "applied": self.applied,
            "pending": self.pending,
            "lag_s": round(self.lag_s, 3),
            "lag_p50_ms": round(float(np.percentile(recent, 50)), 2)
            if recent is not None
            else None,
            "lag_p99_ms": round(float(np.percentile(recent, 99)), 2)
            if recent is not None
            else None,
        }


class Replicator:
    """Durable per-(shard, modality) consumers that apply the log to the local engine.

    The applied position comes from the replica's own store (:class:`StoredPositions`), never
    from the consumer's ack state: see :mod:`edgerag.fleet.positions`.
    """

    def __init__(
        self,
        engine: Engine,
        js: JetStreamContext,
        names: Names,
        node_id: str,
        modalities: list[str] | None = None,
        batch: int = 128,
    ) -> None:
        self.engine = engine
        self.js = js
        self.names = names
        self.node_id = node_id
        self.modalities = modalities or MODALITIES
        self.batch = batch
        self.stored = StoredPositions(engine.store, names.collection)
        self.positions: dict[int, dict[str, Position]] = {}
        self.rebootstrapped: dict[int, list[str]] = {}
        self._tasks: dict[int, list[asyncio.Task[None]]] = {}

    def durable(self, shard: int, modality: str) -> str:
        return f"{self.node_id}_s{shard}_{modality}"

    @property
    def shards(self) -> list[int]:
        return sorted(self._tasks)

    async def start_shard(self, shard: int) -> None:
        """Start consuming a shard from the position its store holds (see ``_subscribe``)."""
        if shard in self._tasks:
            return
        self.positions[shard] = {
            m: Position(applied_seq=self.stored.get(shard, m)) for m in self.modalities
        }
        self.rebootstrapped[shard] = []
        tasks = []
        for modality in self.modalities:
            sub = await self._subscribe(shard, modality)
            tasks.append(asyncio.create_task(self._consume(shard, modality, sub)))
        self._tasks[shard] = tasks
        logger.info("replicating shard %d (%s)", shard, ", ".join(self.modalities))

    async def _subscribe(self, shard: int, modality: str, restart: bool = False) -> Any:
        """Resume the durable consumer when it agrees with the store; otherwise recreate it to
        deliver from the stored position + 1 (everything when the store holds nothing)."""
        api = require("nats.js.api")
        errors = require("nats.js.errors")
        durable = self.durable(shard, modality)
        stored = self.positions[shard][modality].applied_seq
        last = int((await self.js.stream_info(self.names.ops_stream)).state.last_seq or 0)
        if stored > last:  # the stream was recreated (broker state lost): our numbers are void
            logger.warning(
                "shard %d %s: stored position %d is past the ops stream's last sequence %d "
                "(stream recreated?): replaying it from the start",
                shard,
                modality,
                stored,
                last,
            )
            stored = self.positions[shard][modality].applied_seq = 0
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.stored.set, shard, modality, 0)
        try:
            info = await self.js.consumer_info(self.names.ops_stream, durable)
        except errors.NotFoundError:
            info = None
        if info is not None and (restart or info.delivered.stream_seq > stored):
            acked = info.ack_floor.stream_seq
            if acked > stored:
                logger.warning(
                    "shard %d %s: this store has applied the log up to %d but its consumer "
                    "acked %d (wiped or restored store, or a new machine with this node id): "
                    "replaying from %d",
                    shard,
                    modality,
                    stored,
                    acked,
                    stored + 1,
                )
                self.rebootstrapped[shard].append(modality)
            await self.js.delete_consumer(self.names.ops_stream, durable)
            info = None
        policy = api.DeliverPolicy
        config = api.ConsumerConfig(
            durable_name=durable,
            deliver_policy=policy.BY_START_SEQUENCE if stored else policy.ALL,
            opt_start_seq=stored + 1 if stored else None,
            # Ack the last op of a batch (acks everything before it) and wait for the
            # server's confirmation. Unconfirmed ops are redelivered after ack_wait
            # (idempotent); a batch that failed to apply restarts the consumer at the stored
            # position, so an ack of a later batch can never cover an op never applied.
            ack_policy=api.AckPolicy.ALL,
            ack_wait=5.0,
            max_ack_pending=1024,
        )
        self.positions[shard][modality].consumer_seq = (
            info.delivered.consumer_seq if info is not None else 0
        )
        return await self.js.pull_subscribe(
            self.names.ops(shard, modality),
            durable=durable,
            stream=self.names.ops_stream,
            config=config,
        )

    async def stop_shard(self, shard: int, delete: bool = False) -> None:
        for task in self._tasks.pop(shard, []):
            task.cancel()
        self.positions.pop(shard, None)
        if delete:
            for modality in self.modalities:
                try:
                    await self.js.delete_consumer(
                        self.names.ops_stream, self.durable(shard, modality)
                    )
                except Exception as exc:  # already gone
                    logger.debug("delete consumer: %s", exc)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.stored.reset, shard, self.modalities)

    async def stop(self) -> None:
        tasks = [t for ts in self._tasks.values() for t in ts]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _consume(self, shard: int, modality: str, sub: Any) -> None:
        pos = self.positions[shard][modality]
        while True:
            try:
                await self._step(shard, modality, sub, pos)
                continue
            except asyncio.CancelledError:
                raise
            except DeliveryGap as exc:
                logger.warning(
                    "shard %d %s: %s; restarting at the stored position", shard, modality, exc
                )
            except Exception:  # never let one bad batch end replication
                logger.exception("replication batch of shard %d %s failed", shard, modality)
                await asyncio.sleep(0.5)
            sub = await self._restart(shard, modality, sub)

    async def _restart(self, shard: int, modality: str, sub: Any) -> Any:
        """Recreate the consumer at the stored position (see ``_subscribe``)."""
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        try:
            return await self._subscribe(shard, modality, restart=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # NATS away: the next step fails and we come back here
            logger.warning("resubscribe shard %d %s: %s", shard, modality, exc)
            await asyncio.sleep(0.5)
            return sub

    async def _step(self, shard: int, modality: str, sub: Any, pos: Position) -> None:
        nats_errors = require("nats.errors")
        try:
            msgs = await sub.fetch(self.batch, timeout=1.0)
        except (nats_errors.TimeoutError, TimeoutError):
            msgs = []
        except (nats_errors.ConnectionClosedError, nats_errors.ConnectionReconnectingError) as exc:
            logger.debug("fetch: %r", exc)  # the health loop sees the gap
            await asyncio.sleep(0.25)
            return
        if not msgs:  # idle (a fetch can also return nothing before its timeout)
            pos.pending, pos.lag_s, pos.last_fetch = 0, 0.0, time.time()
            return
        first = msgs[0].metadata.sequence.consumer
        if pos.consumer_seq and first > pos.consumer_seq + 1:
            # Deliveries went to a pull request we no longer hear (a reconnect, a cancelled
            # fetch). Applying on would let the ack-all of this batch cover ops never applied.
            raise DeliveryGap(f"deliveries {pos.consumer_seq + 1}..{first - 1} never arrived")
        pos.consumer_seq = msgs[-1].metadata.sequence.consumer
        stamps = [_msg_ts(m) for m in msgs]
        now = time.time()
        pos.lag_s = max(now - min(stamps), 0.0)
        pos.peak_lag_s = max(pos.peak_lag_s, pos.lag_s)
        ops = [Op.from_bytes(m.data) for m in msgs]
        seq = max(pos.applied_seq, max(m.metadata.sequence.stream for m in msgs))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._apply_all, ops, shard, modality, seq)
        done = time.time()
        pos.applied_seq = seq
        try:
            await msgs[-1].ack_sync(timeout=2.0)
        except Exception as exc:  # redelivered later; applying again is harmless
            logger.debug("ack not confirmed: %s", exc)
        pos.delays.extend(done - ts for ts in stamps)
        pos.applied += len(msgs)
        pos.pending = msgs[-1].metadata.num_pending
        pos.lag_s = 0.0 if pos.pending == 0 else max(done - stamps[-1], 0.0)
        pos.last_fetch = done

    def _apply_all(self, ops: list[Op], shard: int, modality: str, seq: int) -> None:
        # One transaction per fetched batch: per-op commits (an fsync each) were what made
        # text lag seconds behind at 500 ops/s. The position is stored after the ops commit
        # (never ahead of the data) and before the ack (never behind the ack floor).
        self.engine.apply_many([op for op in ops if not self._already_applied(op)])
        self.stored.set(shard, modality, seq)

    def _already_applied(self, op: Op) -> bool:
        """Skip our own echoes and deletes of absent documents; anything else re-applies
        (idempotent) so that a replica always converges to the log."""
        local = self.engine.store.document(op.doc_id)
        if op.kind == DELETE:
            return local is None
        same = (
            local is not None
            and op.document is not None
            and (local["content_hash"] == op.document.content_hash)
        )
        return same and op.origin == self.node_id

    def position(self, shard: int, modality: str) -> int:
        pos = self.positions.get(shard, {}).get(modality)
        return pos.applied_seq if pos else 0

    async def high_water(self, shard: int) -> dict[str, int]:
        """The shard's last log sequence per modality, now."""
        marks = await asyncio.gather(
            *(high_water(self.js, self.names, shard, m) for m in self.modalities)
        )
        return dict(zip(self.modalities, marks, strict=True))

    def complete(self, shard: int, targets: dict[str, int]) -> bool:
        """True when this store has applied every op of ``shard`` up to ``targets``."""
        if shard not in self._tasks:
            return False
        return all(self.position(shard, m) >= seq for m, seq in targets.items())

    async def caught_up(self, shard: int, seq: int) -> bool:
        """True when every op of ``shard`` up to stream sequence ``seq`` is applied here."""
        if shard not in self._tasks:
            return False
        for modality in self.modalities:
            if self.position(shard, modality) >= seq:
                continue
            info = await self.js.consumer_info(self.names.ops_stream, self.durable(shard, modality))
            if info.num_pending or info.num_ack_pending:
                return False
        return True


def _msg_ts(msg: Any) -> float:
    raw = (msg.headers or {}).get(H_TS)
    if raw:
        return float(raw)
    return float(msg.metadata.timestamp.timestamp())


def header_doc_id(headers: dict[str, str]) -> str:
    return unquote(headers.get(H_DOC, ""))
