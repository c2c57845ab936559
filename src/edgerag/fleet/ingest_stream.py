"""Streaming ingestion: documents and device events from JetStream (and MQTT) into the log.

Producers publish raw documents to ``edgerag.<c>.in.<anything>`` (the ``EDGERAG_IN_<c>``
stream). Devices can publish over MQTT through the NATS server's MQTT listener: topic
``edgerag/<c>/in/<device>/<name>`` becomes subject ``edgerag.<c>.in.<device>.<name>``; MQTT has
no headers, so the payload is either JSON ``{"id": ..., "text": ..., "metadata": {...}}`` or
raw text whose document id is the topic tail.

Every node runs an :class:`IngestWorker` on one shared durable pull consumer, so each message is
processed by exactly one node at a time (work-queue semantics), and the consumer's ack floor is
the durable position: after a node or broker restart, or a partition, unacked messages are
redelivered. Processing is idempotent — a message whose document already has the same content
hash in the log is acknowledged without work, and the op publish carries a ``Nats-Msg-Id`` —
so a replay neither loses nor duplicates anything. In-flight work is bounded by the consumer's
``max_ack_pending``, and the input stream itself is bounded (producers get an error when it is
full instead of the node running out of memory).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from edgerag._optional import require
from edgerag.engine import Engine
from edgerag.errors import FleetError, InputError
from edgerag.fleet.nats import Names
from edgerag.fleet.replication import H_HASH, MODALITIES, canonical, publish_op
from edgerag.fleet.sharding import doc_subject_token, shard_for
from edgerag.ingest.documents import content_hash

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

    from edgerag.fleet.encoders import EncoderGuard

logger = logging.getLogger(__name__)

H_NAME, H_ID, H_META, H_NOTIFY = "Edgerag-Name", "Edgerag-Id", "Edgerag-Meta", "Edgerag-Notify"
INGEST_DURABLE = "ingest"


@dataclass
class Incoming:
    """One document taken off the ingest stream."""

    doc_id: str
    name: str
    data: bytes
    metadata: dict[str, Any]
    notify: str | None = None


def parse_message(names: Names, subject: str, data: bytes, headers: dict[str, str]) -> Incoming:
    """Headers (edgerag clients) or JSON / raw payload (MQTT devices) → :class:`Incoming`."""
    if H_ID in headers:
        doc_id = unquote(headers[H_ID])
        name = unquote(headers.get(H_NAME, doc_id))
        meta = json.loads(unquote(headers.get(H_META, "%7B%7D")))
        return Incoming(doc_id, name, data, meta, headers.get(H_NOTIFY))
    tail = subject.removeprefix(names.ingest(""))
    doc_id = tail.replace(".", "/")
    try:
        event = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        event = None
    if isinstance(event, dict) and "text" in event:
        doc_id = str(event.get("id") or doc_id)
        meta = dict(event.get("metadata") or {})
        meta.setdefault("device", tail.split(".")[0])
        name = str(event.get("name") or f"{doc_id}.txt")
        return Incoming(doc_id, name, str(event["text"]).encode(), meta)
    name = doc_id if "." in doc_id.rsplit("/", 1)[-1] else f"{doc_id}.txt"
    return Incoming(doc_id, name, data, {"device": tail.split(".")[0]})


class IngestClient:
    """Producer side: put documents on the ingest stream."""

    def __init__(self, nc: Client, names: Names) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.names = names
        self._shards: int | None = None

    async def generation(self, doc_id: str) -> int:
        """Log sequence of the last op of ``doc_id`` (0 if none): its version in the fleet."""
        errors = require("nats.js.errors")
        if self._shards is None:
            self._shards = await self._shard_count()
        shard = shard_for(doc_id, self._shards) if self._shards else "*"
        subject = self.names.ops(shard, "*", doc_subject_token(doc_id))
        try:
            msg = await self.js.get_last_msg(self.names.ops_stream, subject, direct=True)
        except errors.NotFoundError:
            return 0
        return int(msg.seq or 0)

    async def _shard_count(self) -> int:
        try:
            kv = await self.js.key_value(self.names.kv)
            entry = await kv.get("config")
            return int(json.loads(entry.value or b"{}").get("shards") or 0)
        except Exception as exc:  # no fleet config yet: match any shard
            logger.debug("fleet config: %s", exc)
            return 0

    async def put(
        self,
        name: str,
        data: bytes,
        metadata: dict[str, Any] | None = None,
        doc_id: str | None = None,
        wait: bool = False,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Publish one document. Returns ``{"seq": input sequence}``; with ``wait``, also
        ``op_seq`` (the replication-log sequence: pass it as ``min_seq`` to a search for
        read-your-writes) and ``outcome`` ("added" | "unchanged" | "error: ...")."""
        doc_id = doc_id or name
        meta = dict(metadata or {})
        meta_bytes = json.dumps(meta, sort_keys=True).encode()
        generation = str(await self.generation(doc_id)).encode()
        digest = hashlib.sha256(
            doc_id.encode() + b"\0" + data + b"\0" + meta_bytes + b"\0" + generation
        )
        token = digest.hexdigest()[:32]
        headers = {
            H_ID: quote(doc_id, safe=""),
            H_NAME: quote(name, safe=""),
            H_META: quote(json.dumps(meta), safe=""),
            # Same document, same bytes, same log state → same id: the stream drops a resend
            # inside its window. A put after a delete (or after another version) sees a new
            # log state, so it is a new message and is ingested again.
            "Nats-Msg-Id": token,
        }
        sub = None
        if wait:
            headers[H_NOTIFY] = token
            sub = await self.nc.subscribe(self.names.ingested(token), max_msgs=1)
        try:
            ack = await self.js.publish(
                self.names.ingest("docs"), data, headers=headers, stream=self.names.in_stream
            )
            result: dict[str, Any] = {"seq": ack.seq, "duplicate": bool(ack.duplicate)}
            if ack.duplicate:  # the stream already holds this exact message: nothing to wait for
                result["outcome"] = "unchanged"
            elif sub is not None:
                try:
                    notice = await sub.next_msg(timeout=timeout)
                except Exception as exc:
                    raise FleetError(f"{name}: not ingested within {timeout} s") from exc
                result.update(json.loads(notice.data))
            return result
        finally:
            if sub is not None:
                await sub.unsubscribe()


class IngestWorker:
    """Consumer side: micro-batches documents off the ingest stream, encodes once, publishes ops.

    Args:
        engine: supplies the config and encoder (a private scratch collection builds the ops,
            so this node never stores documents of shards it does not hold).
        js: JetStream context.
        names: subjects.
        shards: shard count.
        node_id: origin of the published ops.
        batch: messages per fetch (micro-batch).
        max_in_flight: unacked messages at most (backpressure on the shared consumer).
        guard: refuses ops whose vectors are not the fleet's encoders (the message is left
            for a node that has them).
    """

    def __init__(
        self,
        engine: Engine,
        js: JetStreamContext,
        names: Names,
        shards: int,
        node_id: str,
        batch: int = 32,
        max_in_flight: int = 256,
        guard: EncoderGuard | None = None,
    ) -> None:
        self.engine = engine
        self.js = js
        self.names = names
        self.shards = shards
        self.node_id = node_id
        self.batch = batch
        self.max_in_flight = max_in_flight
        self.guard = guard
        self.scratch = Engine.open(":memory:", engine.config, encoder=engine.encoder)
        self.counts = {"added": 0, "unchanged": 0, "errors": 0}

    async def run(self) -> None:
        api = require("nats.js.api")
        nats_errors = require("nats.errors")
        config = api.ConsumerConfig(
            durable_name=INGEST_DURABLE,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=60.0,
            max_ack_pending=self.max_in_flight,
        )
        sub = None
        while True:
            try:
                if sub is None:
                    sub = await self.js.pull_subscribe(
                        self.names.ingest(),
                        durable=INGEST_DURABLE,
                        stream=self.names.in_stream,
                        config=config,
                    )
                msgs = await sub.fetch(self.batch, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except (nats_errors.TimeoutError, TimeoutError):
                continue
            except Exception as exc:  # broker restart / partition: retry, position is durable
                logger.warning("ingest fetch: %r", exc)
                await asyncio.sleep(0.5)
                continue
            await self._process(msgs)

    async def _process(self, msgs: list[Any]) -> None:
        for msg in msgs:
            try:
                incoming = parse_message(self.names, msg.subject, msg.data, dict(msg.headers or {}))
                outcome, op_seq = await self._ingest(incoming, msg.metadata.sequence.stream)
            except asyncio.CancelledError:
                raise
            except InputError as exc:
                await msg.term()  # bad input is never retried; it is reported
                self.counts["errors"] += 1
                await self._notify(msg, {"outcome": f"error: {exc}", "op_seq": None})
                continue
            except Exception as exc:  # NATS trouble: leave unacked, it is redelivered
                logger.warning("ingest of message %s deferred: %s", msg.metadata.sequence, exc)
                await msg.nak(delay=1.0)
                continue
            await msg.ack()
            self.counts[outcome] += 1
            await self._notify(msg, {"outcome": outcome, "op_seq": op_seq})

    async def _notify(self, msg: Any, body: dict[str, Any]) -> None:
        token = (msg.headers or {}).get(H_NOTIFY)
        if token:
            await self.js._nc.publish(self.names.ingested(token), json.dumps(body).encode())

    async def _ingest(self, incoming: Incoming, in_seq: int) -> tuple[str, int | None]:
        chash = content_hash(incoming.data, incoming.metadata)
        found = await asyncio.gather(
            *(canonical(self.js, self.names, incoming.doc_id, self.shards, m) for m in MODALITIES)
        )
        for op, headers in found:
            if op is not None and op.kind != "delete" and headers.get(H_HASH) == chash:
                return "unchanged", None
        loop = asyncio.get_running_loop()
        op = await loop.run_in_executor(None, self._build, incoming)
        op.ts = time.time()
        if self.guard is not None:
            await self.guard.check(op)
        seq = await publish_op(
            self.js, self.names, op, self.shards, self.node_id, msg_id=f"in:{in_seq}"
        )
        return "added", seq

    def _build(self, incoming: Incoming) -> Any:
        meta = {**incoming.metadata, "doc_id": incoming.doc_id}
        report = self.scratch.ingest([(incoming.name, incoming.data)], meta)
        if report.errors:
            source, reason = report.errors[0]
            raise InputError(source, reason)
        op = self.scratch.store.materialize(incoming.doc_id)
        self.scratch.delete(incoming.doc_id)
        return op

    def close(self) -> None:
        self.scratch.close()
