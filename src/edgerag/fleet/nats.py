"""NATS connection helpers and the fleet's JetStream layout (streams, KV buckets, subjects).

Layout for collection ``<c>``:

=====================================================  ==========================================
``edgerag.<c>.ops.<shard>.<modality>.<doc>``           ops stream ``EDGERAG_OPS_<c>``: the
                                                       replication log. ``<doc>`` is a hash of
                                                       the document id, so the *last message of a
                                                       subject* is the canonical state of one
                                                       document (drift checks, snapshots).
``edgerag.<c>.in.>``                                   ingest stream ``EDGERAG_IN_<c>``: raw
                                                       documents and device events (MQTT topics
                                                       ``edgerag/<c>/in/...`` land here too).
``edgerag.<c>.search.<shard>`` (queue ``replicas``)    search requests for a shard's healthy
                                                       replicas; ``...<shard>.<node>`` addresses
                                                       one replica directly (retries).
``edgerag.<c>.nodesearch.<node>``                      one request for several shards a node
                                                       holds (the router's usual path).
KV ``edgerag_<c>``                                     ``config``, ``members.<node>``, ``shardmap``
KV ``edgerag_<c>_hb`` (TTL)                            ``hb.<node>``: heartbeats with per-shard,
                                                       per-modality applied position, lag, drift.
=====================================================  ==========================================
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgerag._optional import EXTRAS, require
from edgerag.errors import ConfigError, FleetError

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

logger = logging.getLogger(__name__)

EXTRAS.setdefault("nats", ("fleet", "the NATS fleet"))
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SEARCH_QUEUE = "replicas"


def check_token(kind: str, value: str) -> str:
    """Collection and node ids become subject tokens and consumer names: keep them plain."""
    if not _TOKEN.match(value):
        raise ConfigError(f"{kind} {value!r} must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


@dataclass(frozen=True)
class Names:
    """Subjects, stream and bucket names of one collection."""

    collection: str = "default"

    def __post_init__(self) -> None:
        check_token("collection", self.collection)

    @property
    def ops_stream(self) -> str:
        return f"EDGERAG_OPS_{self.collection}"

    @property
    def in_stream(self) -> str:
        return f"EDGERAG_IN_{self.collection}"

    @property
    def kv(self) -> str:
        return f"edgerag_{self.collection}"

    @property
    def hb_kv(self) -> str:
        return f"edgerag_{self.collection}_hb"

    def ops(self, shard: int | str = "*", modality: str = "*", doc: str = ">") -> str:
        return f"edgerag.{self.collection}.ops.{shard}.{modality}.{doc}"

    def ingest(self, suffix: str = ">") -> str:
        return f"edgerag.{self.collection}.in.{suffix}"

    def ingested(self, token: str) -> str:
        """Core-NATS notice that an ingest message became an op (read-your-writes)."""
        return f"edgerag.{self.collection}.ingested.{token}"

    def search(self, shard: int, node: str | None = None) -> str:
        base = f"edgerag.{self.collection}.search.{shard}"
        return f"{base}.{node}" if node else base

    def node_search(self, node: str) -> str:
        """One node's subject for a request naming several of its shards."""
        return f"edgerag.{self.collection}.nodesearch.{node}"


async def connect(url: str, name: str = "edgerag", **options: Any) -> Client:
    """Connect with reconnects forever (an edge link comes and goes); errors → FleetError."""
    nats = require("nats")

    async def _error(exc: Exception) -> None:
        logger.debug("nats %s: %s", name, exc)

    defaults: dict[str, Any] = {
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.25,
        "connect_timeout": 2,
        "allow_reconnect": True,
        "error_cb": _error,
    }
    defaults.update(options)
    try:
        return await nats.connect(url, **defaults)
    except Exception as exc:  # nats raises several unrelated types for "cannot connect"
        raise FleetError(f"cannot connect to NATS at {url}: {exc}") from exc


async def ensure_layout(js: JetStreamContext, names: Names, hb_ttl_s: float = 10.0) -> None:
    """Create the streams and KV buckets if missing (idempotent, safe to race)."""
    api = require("nats.js.api")
    errors = require("nats.js.errors")
    streams = [
        api.StreamConfig(
            name=names.ops_stream,
            subjects=[names.ops()],
            storage=api.StorageType.FILE,
            # Idempotent publishing: a retried publish with the same Nats-Msg-Id is dropped.
            duplicate_window=120.0,
            allow_direct=True,
        ),
        api.StreamConfig(
            name=names.in_stream,
            subjects=[names.ingest()],
            storage=api.StorageType.FILE,
            duplicate_window=120.0,
            # Bounded buffer: when it is full producers get an error (backpressure), old
            # documents are never silently dropped.
            max_msgs=1_000_000,
            discard=api.DiscardPolicy.NEW,
        ),
    ]
    for config in streams:
        try:
            await js.stream_info(config.name)
        except errors.NotFoundError:
            try:
                await js.add_stream(config)
            except errors.BadRequestError:  # created concurrently by another node
                pass
    await _ensure_kv(js, api.KeyValueConfig(bucket=names.kv, history=1))
    await _ensure_kv(js, api.KeyValueConfig(bucket=names.hb_kv, history=1, ttl=hb_ttl_s))


async def _ensure_kv(js: JetStreamContext, config: Any) -> None:
    errors = require("nats.js.errors")
    try:
        await js.key_value(config.bucket)
    except errors.BucketNotFoundError:
        try:
            await js.create_key_value(config)
        except errors.BadRequestError:
            pass
