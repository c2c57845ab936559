"""Fleet-wide delete (GDPR erasure): from any node or client, to every replica of the owner shard.

A delete is an op in the replication log on the subject of each modality where the document is
live, so every replica applies it through the same path as any op — store rows, vectors, FTS
rows, thumbnails (item rows), index entries — and a replica that is down applies it when it
returns (its position is below the delete's sequence, so it replays it). Confirmation is read
from the replicas' heartbeats: a replica has applied the delete when its stored position for
that shard and modality is at or past the delete's sequence.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgerag._optional import require
from edgerag.errors import NotFoundError
from edgerag.fleet.nats import Names
from edgerag.fleet.replication import MODALITIES, publish_op
from edgerag.fleet.sharding import doc_subject_token, shard_for
from edgerag.privacy.erasure import doc_hash
from edgerag.store.ops import DELETE, Op

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from edgerag.fleet.shardmap import FleetView


@dataclass
class Erasure:
    """Outcome of a fleet-wide delete."""

    doc_id: str
    shard: int
    seqs: dict[str, int]  # modality → log sequence of the delete
    confirmed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "shard": self.shard,
            "seqs": self.seqs,
            "confirmed": self.confirmed,
            "pending": self.pending,
        }


async def _last_ops(
    js: JetStreamContext, names: Names, doc_id: str, shards: int
) -> dict[str, tuple[Op, int]]:
    """modality → (the log's last op of ``doc_id`` on it, its sequence)."""
    errors = require("nats.js.errors")
    shard, token = shard_for(doc_id, shards), doc_subject_token(doc_id)
    out = {}
    for modality in MODALITIES:
        try:
            msg = await js.get_last_msg(names.ops_stream, names.ops(shard, modality, token))
        except errors.NotFoundError:
            continue
        out[modality] = (Op.from_bytes(msg.data or b""), int(msg.seq or 0))
    return out


async def resolve(js: JetStreamContext, names: Names, doc_id: str, shards: int) -> str:
    """``doc_id`` as the log knows it: as given, else as an absolute path (``fleet put``
    stores files under their resolved path)."""
    if await _last_ops(js, names, doc_id, shards):
        return doc_id
    resolved = str(Path(doc_id).resolve())
    if resolved != doc_id and await _last_ops(js, names, resolved, shards):
        return resolved
    return doc_id


async def publish_delete(
    js: JetStreamContext,
    names: Names,
    doc_id: str,
    shards: int,
    origin: str,
    must_be_live: bool = True,
) -> Erasure:
    """Publish a delete of ``doc_id`` on every modality where it is live.

    Raises :class:`NotFoundError` when the log has no live version of it (``must_be_live``);
    otherwise a delete already in the log counts as done (a retried erasure is idempotent).
    """
    last = await _last_ops(js, names, doc_id, shards)
    live = [m for m, (op, _) in last.items() if op.kind != DELETE]
    if must_be_live and not live:
        raise NotFoundError(f"document {doc_id!r} is not in the fleet")
    seqs = {m: seq for m, (op, seq) in last.items() if op.kind == DELETE}
    for modality in live:
        # Same document version, same message id: a retry inside the dedupe window is dropped.
        version = hashlib.blake2b(f"{doc_id}:{last[modality][1]}".encode(), digest_size=12)
        seqs[modality] = await publish_op(
            js,
            names,
            Op(kind=DELETE, doc_id=doc_id),
            shards,
            origin,
            msg_id=f"del:{version.hexdigest()}:{modality}",
            modality=modality,
        )
    erased = await erase_history(js, names, doc_id, shards, seqs)
    logger.debug("delete of %s published at %s; %d earlier ops erased", doc_id, seqs, erased)
    return Erasure(doc_id, shard_for(doc_id, shards), seqs)


async def erase_history(
    js: JetStreamContext, names: Names, doc_id: str, shards: int, seqs: dict[str, int]
) -> int:
    """Securely erase the earlier ops of ``doc_id`` from the replication log.

    The log would otherwise keep every upsert (text and vectors) for good. A message delete
    without ``no_erase`` makes the NATS server overwrite the stored bytes, not just unlink
    them. The delete op itself stays, so a replica that is behind still applies it; one that
    never saw the document simply never gets it. Returns how many messages were erased.
    """
    errors = require("nats.js.errors")
    shard, token = shard_for(doc_id, shards), doc_subject_token(doc_id)
    erased = 0
    for modality, delete_seq in seqs.items():
        subject = names.ops(shard, modality, token)
        seq = 1
        while True:
            try:
                msg = await js.get_msg(names.ops_stream, seq, subject=subject, next=True)
            except errors.NotFoundError:
                break
            found = int(msg.seq or 0)
            if found >= delete_seq:
                break
            try:
                await js.delete_msg(names.ops_stream, found)
                erased += 1
            except errors.NotFoundError:  # erased concurrently by another deleter
                pass
            seq = found + 1
    return erased


def replica_applied(view: FleetView, node: str, shard: int, seqs: dict[str, int]) -> bool:
    """True when ``node``'s latest live heartbeat shows every op of ``seqs`` applied."""
    if not view.alive(node):
        return False
    info = view.heartbeats[node].get("shards", {}).get(str(shard))
    if info is None:
        return False
    mods = info.get("modalities", {})
    return all((mods.get(m, {}).get("position") or 0) >= seq for m, seq in seqs.items())


async def await_replicas(view: FleetView, erasure: Erasure, wait_s: float) -> Erasure:
    """Fill ``confirmed`` / ``pending`` with the shard's replicas, waiting up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        replicas = list(view.shardmap.get(erasure.shard, []))
        done = [n for n in replicas if replica_applied(view, n, erasure.shard, erasure.seqs)]
        erasure.confirmed = sorted(done)
        erasure.pending = sorted(set(replicas) - set(done))
        if (replicas and not erasure.pending) or time.monotonic() > deadline:
            assert view.config is not None, "fleet config not loaded"
            await record(view.membership.js, view.config.names, erasure)
            return erasure
        await asyncio.sleep(0.1)


def _record_key(doc_id: str) -> str:
    return f"erasure.{doc_hash(doc_id)}"


def _bucket(names: Names) -> str:
    # Its own bucket: the membership bucket is watched by every FleetView, and records of
    # every erasure ever made have no place in what each view replays.
    return f"{names.kv}_erasures"


async def record(js: JetStreamContext, names: Names, erasure: Erasure) -> None:
    """Keep the fleet's erasure record in a KV bucket: doc id hash (never the id), time,
    log sequences, and which replicas had confirmed when the deleting client stopped waiting.
    Every replica also keeps its own record in its store (``edgerag erasure-report --db``)."""
    api, errors = require("nats.js.api"), require("nats.js.errors")
    try:
        kv = await js.key_value(_bucket(names))
    except errors.BucketNotFoundError:
        kv = await js.create_key_value(api.KeyValueConfig(bucket=_bucket(names), history=1))
    body = {
        "doc_hash": doc_hash(erasure.doc_id),
        "ts": time.time(),
        "shard": erasure.shard,
        "seqs": erasure.seqs,
        "confirmed": erasure.confirmed,
        "pending": erasure.pending,
    }
    await kv.put(_record_key(erasure.doc_id), json.dumps(body).encode())
    logger.debug("erasure record of %s written", erasure.doc_id)


async def report(js: JetStreamContext, view: FleetView, doc_id: str) -> dict[str, Any]:
    """The fleet's erasure record of ``doc_id`` with confirmation re-read from the replicas'
    heartbeats now (a replica that was down at delete time confirms once it has replayed).

    Raises :class:`NotFoundError` when the fleet holds no erasure record of it."""
    errors = require("nats.js.errors")
    assert view.config is not None, "fleet config not loaded"
    raw = None
    try:
        kv = await js.key_value(_bucket(view.config.names))
        for candidate in dict.fromkeys((doc_id, str(Path(doc_id).resolve()))):
            try:
                raw = (await kv.get(_record_key(candidate))).value
                break
            except errors.KeyNotFoundError:
                continue
    except errors.BucketNotFoundError:
        pass
    if raw is None:
        raise NotFoundError(f"the fleet has no erasure record of {doc_id!r}")
    body = json.loads(raw)
    shard, seqs = int(body["shard"]), {m: int(s) for m, s in body["seqs"].items()}
    replicas = list(view.shardmap.get(shard, []))
    body["confirmed_now"] = sorted(n for n in replicas if replica_applied(view, n, shard, seqs))
    body["pending_now"] = sorted(set(replicas) - set(body["confirmed_now"]))
    return body


async def erase(
    js: JetStreamContext,
    view: FleetView,
    doc_id: str,
    origin: str,
    wait_s: float = 10.0,
) -> Erasure:
    """Delete ``doc_id`` from the whole fleet and report which replicas confirmed it."""
    assert view.config is not None, "fleet config not loaded"
    names, shards = view.config.names, view.config.shards
    doc_id = await resolve(js, names, doc_id, shards)
    erasure = await publish_delete(js, names, doc_id, shards, origin)
    return await await_replicas(view, erasure, wait_s)
