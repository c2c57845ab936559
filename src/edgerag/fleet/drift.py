"""Drift: compare a replica's stored vectors with the log's canonical ones, and reconcile.

A check samples up to ``sample`` items of one shard and one item modality, fetches the
canonical op of each sampled document (the last message of its subject in the ops stream) and
measures the mean cosine deviation ``1 - cos(local, canonical)`` over every (item, space)
pair the log has a vector for; a vector missing locally counts as 1. It also compares the
encoder that produced the canonical vectors with the encoder this node *queries* with: if they
differ, reconciled vectors would still be searched with foreign query vectors, so the replica
cannot be verified (the realistic case is a rolling encoder upgrade).

Reconcile replays a snapshot of the shard (an ephemeral consumer with "last per subject"
delivery = the current state of every document) through :meth:`Engine.apply`, and deletes local
documents of the shard the log no longer has.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgerag._optional import require
from edgerag.fleet.nats import Names
from edgerag.fleet.replication import canonical
from edgerag.fleet.sharding import shard_for
from edgerag.store.ops import DELETE, Op

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from edgerag.engine import Engine

logger = logging.getLogger(__name__)


@dataclass
class DriftReport:
    """Outcome of one drift check of one shard and item modality."""

    shard: int
    modality: str
    sampled: int = 0
    mean_deviation: float = 0.0
    missing_vectors: int = 0
    extra_documents: int = 0  # held locally, deleted (or absent) in the log
    encoder_mismatch: list[str] = field(default_factory=list)
    checked_at: float = field(default_factory=time.time)

    @property
    def verdict(self) -> str:
        """``unknown`` when nothing was sampled — never "verified" — else ``checked`` (the
        caller judges the numbers against its threshold)."""
        return "unknown" if self.sampled == 0 else "checked"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean_deviation"] = round(self.mean_deviation, 5)
        data["verdict"] = self.verdict
        return data


def shard_documents(engine: Engine, shard: int, shards: int) -> list[tuple[str, str]]:
    """``(doc_id, modality)`` of every local document that belongs to ``shard``."""
    out: list[tuple[str, str]] = []
    offset = 0
    while True:
        page = engine.store.documents(limit=1000, offset=offset)
        if not page:
            return out
        offset += len(page)
        out += [
            (d["doc_id"], d["modality"]) for d in page if shard_for(d["doc_id"], shards) == shard
        ]


def _sample_items(
    engine: Engine, docs: list[tuple[str, str]], modality: str, sample: int, rng: random.Random
) -> dict[str, tuple[str, list[int]]]:
    """doc_id → (doc modality, sampled item keys of ``modality``), ~``sample`` items in all."""
    order = list(docs)
    rng.shuffle(order)
    picked: dict[str, tuple[str, list[int]]] = {}
    total = 0
    for doc_id, doc_modality in order:
        keys = engine.store.doc_keys(doc_id)
        rows = engine.store.items(keys)
        mine = [k for k in keys if k in rows and rows[k]["modality"] == modality]
        if not mine:
            continue
        mine = mine[: sample - total]
        picked[doc_id] = (doc_modality, mine)
        total += len(mine)
        if total >= sample:
            break
    return picked


class DriftChecker:
    """Runs drift checks and reconciliations for the shards of one node."""

    def __init__(self, engine: Engine, js: JetStreamContext, names: Names, shards: int) -> None:
        self.engine = engine
        self.js = js
        self.names = names
        self.shards = shards
        self.rng = random.Random()

    async def check(self, shard: int, modality: str, sample: int = 1000) -> DriftReport:
        loop = asyncio.get_running_loop()
        docs = await loop.run_in_executor(None, shard_documents, self.engine, shard, self.shards)
        picked = await loop.run_in_executor(
            None, _sample_items, self.engine, docs, modality, sample, self.rng
        )
        report = DriftReport(shard, modality)
        deviations: list[float] = []
        mismatches: set[str] = set()
        for doc_id, (doc_modality, keys) in picked.items():
            op, _ = await canonical(self.js, self.names, doc_id, self.shards, doc_modality)
            if op is None or op.kind == DELETE:
                report.extra_documents += 1
                deviations += [1.0] * len(keys)
                continue
            devs, missing, skew = await loop.run_in_executor(None, self._compare, op, keys)
            deviations += devs
            report.missing_vectors += missing
            mismatches |= skew
        report.sampled = sum(len(k) for _, k in picked.values())
        report.mean_deviation = float(np.mean(deviations)) if deviations else 0.0
        report.encoder_mismatch = sorted(mismatches)
        return report

    def _compare(self, op: Op, keys: list[int]) -> tuple[list[float], int, set[str]]:
        wanted = set(keys)
        devs: list[float] = []
        missing = 0
        skew: set[str] = set()
        for space, sv in op.vectors.items():
            index = self.engine.indexes.get(space)
            if index is not None and (index.spec.encoder, index.spec.version) != (
                sv.encoder,
                sv.version,
            ):
                skew.add(
                    f"{space}: node queries with {index.spec.encoder}/{index.spec.version}, "
                    f"log vectors are {sv.encoder}/{sv.version}"
                )
            mask = np.isin(sv.keys, list(wanted))
            if not mask.any():
                continue
            ckeys, cvecs = sv.keys[mask], sv.vectors[mask]
            present, local = self.engine.store.vectors(space, ckeys)
            by_key = {int(k): local[i] for i, k in enumerate(present)}
            for key, canon in zip(ckeys, cvecs, strict=True):
                mine = by_key.get(int(key))
                if mine is None:
                    missing += 1
                    devs.append(1.0)
                    continue
                denom = float(np.linalg.norm(mine) * np.linalg.norm(canon)) or 1.0
                devs.append(1.0 - float(np.dot(mine, canon)) / denom)
        return devs, missing, skew

    async def snapshot(self, shard: int) -> list[Op]:
        """The current state of every document of ``shard`` from the log (last per subject)."""
        api = require("nats.js.api")
        nats_errors = require("nats.errors")
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
        )
        sub = await self.js.pull_subscribe(
            self.names.ops(shard), stream=self.names.ops_stream, config=config
        )
        ops: dict[str, Op] = {}
        try:
            info = await sub.consumer_info()
            remaining = info.num_pending
            while remaining > 0:
                try:
                    msgs = await sub.fetch(min(remaining, 256), timeout=2.0)
                except (nats_errors.TimeoutError, TimeoutError):
                    break
                for msg in msgs:
                    op = Op.from_bytes(msg.data)
                    # Keep the newest op per document (a delete may sit on other modalities).
                    if op.doc_id not in ops or msg.metadata.sequence.stream > ops[op.doc_id].lsn:
                        op.lsn = msg.metadata.sequence.stream
                        ops[op.doc_id] = op
                remaining = msgs[-1].metadata.num_pending if msgs else 0
        finally:
            await sub.unsubscribe()
        return list(ops.values())

    async def reconcile(self, shard: int) -> dict[str, int]:
        """Make the local copy of ``shard`` equal to the log's current state."""
        loop = asyncio.get_running_loop()
        snapshot = await self.snapshot(shard)
        counts = await loop.run_in_executor(None, self._apply_snapshot, shard, snapshot)
        logger.info("reconciled shard %d: %s", shard, counts)
        return counts

    def _apply_snapshot(self, shard: int, snapshot: list[Op]) -> dict[str, int]:
        counts = {"applied": 0, "deleted": 0, "unchanged": 0}
        live = set()
        for op in snapshot:
            op.lsn = 0  # the local store assigns its own LSN
            if op.kind == DELETE:
                if self.engine.store.document(op.doc_id) is not None:
                    self.engine.apply(Op(kind=DELETE, doc_id=op.doc_id, origin="reconcile"))
                    counts["deleted"] += 1
                continue
            live.add(op.doc_id)
            if self._matches(op):
                counts["unchanged"] += 1
                continue
            op.origin = op.origin or "reconcile"
            self.engine.apply(op)
            counts["applied"] += 1
        for doc_id, _ in shard_documents(self.engine, shard, self.shards):
            if doc_id not in live:
                self.engine.apply(Op(kind=DELETE, doc_id=doc_id, origin="reconcile"))
                counts["deleted"] += 1
        return counts

    def _matches(self, op: Op) -> bool:
        local = self.engine.store.document(op.doc_id)
        if local is None or op.document is None:
            return False
        if local["content_hash"] != op.document.content_hash:
            return False
        keys = sorted({int(k) for sv in op.vectors.values() for k in sv.keys})
        devs, missing, _ = self._compare(op, keys)
        return missing == 0 and (not devs or max(devs) < 1e-5)
