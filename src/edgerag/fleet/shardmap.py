"""Fleet membership in JetStream KV: fleet config, members, the shard map, TTL heartbeats.

* ``config`` — :class:`FleetConfig` (shard count, replicas, policies), written once by the
  first node (or ``edgerag fleet init``); later nodes adopt it.
* ``members.<node>`` — registration; stays while a node is down so that its replicas stay
  assigned (a restart resumes; it does not reshuffle). ``edgerag fleet remove-node`` drops one.
* ``shardmap`` — shard → replica nodes, rendezvous-hashed from the members. Every node computes
  the same map; the KV copy is what status and routers read.
* ``hb.<node>`` (TTL bucket) — heartbeats: state, per-shard per-modality position, lag, drift.
  A node that stops heartbeating disappears after the bucket TTL; readers also judge age.

:class:`FleetView` keeps a live copy of both buckets through KV watchers (no polling).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from edgerag._optional import require
from edgerag.errors import ConfigError
from edgerag.fleet.nats import Names, check_token, ensure_layout
from edgerag.fleet.policy import Policies
from edgerag.fleet.sharding import assign

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

logger = logging.getLogger(__name__)

SERVING = "serving"


@dataclass(frozen=True)
class FleetConfig:
    """Fleet-wide settings of one collection, shared through KV.

    Attributes:
        collection: collection name (subject token).
        shards: fixed shard count (choose it once: changing it re-homes every document).
        replicas: replicas per shard.
        policies: per-modality sync policies.
        heartbeat_s: heartbeat period; a heartbeat older than 3 periods marks the node
            unreachable for routing.
        drift_interval_s: period of the drift check.
        drift_sample: items sampled per shard and modality in one drift check.
        encoders: space → ``encoder/version/dim`` of the fleet's vectors (recorded by the first
            node that has the space; a node that differs neither serves nor publishes).
    """

    collection: str = "default"
    shards: int = 4
    replicas: int = 2
    policies: Policies = field(default_factory=Policies)
    heartbeat_s: float = 1.0
    drift_interval_s: float = 60.0
    drift_sample: int = 1000
    encoders: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_token("collection", self.collection)
        if self.shards < 1 or self.replicas < 1:
            raise ConfigError("shards and replicas must be >= 1")
        if self.heartbeat_s <= 0 or self.drift_interval_s <= 0 or self.drift_sample < 1:
            raise ConfigError("heartbeat_s, drift_interval_s, drift_sample must be positive")

    @property
    def names(self) -> Names:
        return Names(self.collection)

    @property
    def stale_after_s(self) -> float:
        return 3 * self.heartbeat_s

    def to_json(self) -> bytes:
        data = asdict(self)
        data["policies"] = self.policies.to_dict()
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> FleetConfig:
        data = json.loads(raw)
        data["policies"] = Policies.from_dict(data.get("policies", {}))
        return cls(**data)


class Membership:
    """Reads and writes the two KV buckets of one collection."""

    def __init__(self, js: JetStreamContext, names: Names, kv: KeyValue, hb: KeyValue) -> None:
        self.js = js
        self.names = names
        self.kv = kv
        self.hb = hb

    @classmethod
    async def open(cls, js: JetStreamContext, names: Names, hb_ttl_s: float = 10.0) -> Membership:
        await ensure_layout(js, names, hb_ttl_s)
        return cls(js, names, await js.key_value(names.kv), await js.key_value(names.hb_kv))

    async def _get(self, kv: KeyValue, key: str) -> bytes | None:
        errors = require("nats.js.errors")
        try:
            entry = await kv.get(key)
        except errors.KeyNotFoundError:
            return None
        return entry.value

    async def config(self) -> FleetConfig | None:
        raw = await self._get(self.kv, "config")
        return FleetConfig.from_json(raw) if raw else None

    async def init_config(self, config: FleetConfig) -> FleetConfig:
        """Store ``config`` unless one exists; return the one in force."""
        errors = require("nats.js.errors")
        try:
            await self.kv.create("config", config.to_json())
            return config
        except errors.KeyWrongLastSequenceError:
            existing = await self.config()
            assert existing is not None
            return existing

    async def record_encoders(self, encoders: dict[str, str]) -> FleetConfig:
        """Record the spaces of ``encoders`` the config does not have yet (compare-and-set: a
        space recorded by another node meanwhile wins); return the config in force."""
        errors = require("nats.js.errors")
        while True:
            entry = await self.kv.get("config")
            config = FleetConfig.from_json(entry.value or b"{}")
            merged = {**encoders, **config.encoders}
            if merged == config.encoders:
                return config
            updated = replace(config, encoders=merged)
            try:
                await self.kv.update("config", updated.to_json(), last=entry.revision)
                logger.info("fleet encoders now %s", merged)
                return updated
            except errors.KeyWrongLastSequenceError:
                continue

    async def register(self, node_id: str, info: dict[str, Any]) -> None:
        await self.kv.put(f"members.{node_id}", json.dumps(info).encode())

    async def remove(self, node_id: str) -> None:
        await self.kv.delete(f"members.{node_id}")
        with contextlib.suppress(Exception):
            await self.hb.delete(f"hb.{node_id}")

    async def members(self) -> dict[str, dict[str, Any]]:
        errors = require("nats.js.errors")
        try:
            keys = await self.kv.keys()
        except errors.NoKeysError:
            return {}
        out = {}
        for key in keys:
            if key.startswith("members."):
                raw = await self._get(self.kv, key)
                if raw:
                    out[key.removeprefix("members.")] = json.loads(raw)
        return out

    async def shardmap(self) -> dict[int, list[str]]:
        raw = await self._get(self.kv, "shardmap")
        return {int(k): v for k, v in json.loads(raw).items()} if raw else {}

    async def update_shardmap(self, config: FleetConfig) -> dict[int, list[str]]:
        """Recompute the map from the members; write it when it changed."""
        wanted = assign(config.shards, await self.members(), config.replicas)
        if await self.shardmap() != wanted:
            await self.kv.put("shardmap", json.dumps(wanted, sort_keys=True).encode())
            logger.info("shard map now %s", wanted)
        return wanted

    async def heartbeat(self, node_id: str, status: dict[str, Any]) -> None:
        await self.hb.put(f"hb.{node_id}", json.dumps(status).encode())

    async def heartbeats(self) -> dict[str, dict[str, Any]]:
        errors = require("nats.js.errors")
        try:
            keys = await self.hb.keys()
        except errors.NoKeysError:
            return {}
        out = {}
        for key in keys:
            raw = await self._get(self.hb, key)
            if raw:
                out[key.removeprefix("hb.")] = json.loads(raw)
        return out


class FleetView:
    """A live, in-memory copy of config, members, shard map and heartbeats (KV watchers)."""

    def __init__(self, membership: Membership) -> None:
        self.membership = membership
        self.config: FleetConfig | None = None
        self.members: dict[str, dict[str, Any]] = {}
        self.shardmap: dict[int, list[str]] = {}
        self.heartbeats: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> FleetView:
        ready = [asyncio.Event(), asyncio.Event()]
        self._tasks = [
            asyncio.create_task(self._watch(self.membership.kv, self._on_kv, ready[0], 5.0)),
            asyncio.create_task(self._watch(self.membership.hb, self._on_hb, ready[1], 2.0)),
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), timeout=10)
        return self

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _watch(self, kv: KeyValue, apply: Any, ready: asyncio.Event, idle_s: float) -> None:
        """Follow a bucket. A watcher can silently stall across a broker restart, so one that
        has been idle for ``idle_s`` is replaced; the replacement replays current values."""
        nats_errors = require("nats.errors")
        while True:
            watcher = None
            try:
                watcher = await kv.watchall()
                while True:
                    try:
                        entry = await watcher.updates(timeout=idle_s)
                    except (nats_errors.TimeoutError, TimeoutError):
                        break
                    if entry is None:
                        ready.set()
                        continue
                    deleted = entry.operation in ("DEL", "PURGE")
                    apply(entry.key, None if deleted else entry.value)
                    self.changed.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # disconnected: try again shortly
                logger.debug("KV watch restarting: %s", exc)
                await asyncio.sleep(0.5)
            finally:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()

    def _on_kv(self, key: str, value: bytes | None) -> None:
        if key == "config" and value:
            self.config = FleetConfig.from_json(value)
        elif key == "shardmap":
            self.shardmap = {int(k): v for k, v in json.loads(value).items()} if value else {}
        elif key.startswith("members."):
            node = key.removeprefix("members.")
            if value is None:
                self.members.pop(node, None)
            else:
                self.members[node] = json.loads(value)

    def _on_hb(self, key: str, value: bytes | None) -> None:
        node = key.removeprefix("hb.")
        if value is None:
            self.heartbeats.pop(node, None)
        else:
            self.heartbeats[node] = json.loads(value)

    def alive(self, node: str, now: float | None = None) -> bool:
        hb = self.heartbeats.get(node)
        if hb is None or self.config is None:
            return False
        return (now or time.time()) - hb["ts"] <= self.config.stale_after_s

    def serving(self, node: str, shard: int, now: float | None = None) -> bool:
        """True when ``node`` heartbeats and reports ``shard`` as serving."""
        if not self.alive(node, now):
            return False
        shard_state = self.heartbeats[node].get("shards", {}).get(str(shard), {})
        return bool(shard_state.get("state") == SERVING)

    def healthy_replicas(self, shard: int) -> list[str]:
        now = time.time()
        return [n for n in self.shardmap.get(shard, []) if self.serving(n, shard, now)]
