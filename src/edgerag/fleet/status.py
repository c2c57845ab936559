"""Fleet status: nodes, shards, replicas, per-modality lag and drift, and one verdict (green).

Green means: every member heartbeats; every shard has its full replica count serving; no
replica is over its modality's lag budget or drift threshold. ``edgerag fleet status`` exits
non-zero otherwise, which makes it the gate of a rolling update (upgrade one node, wait for
green, go on).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from edgerag._optional import require
from edgerag.errors import FleetError
from edgerag.fleet.nats import Names
from edgerag.fleet.shardmap import SERVING, FleetConfig, Membership

if TYPE_CHECKING:
    from nats.aio.client import Client


async def read_status(nc: Client, collection: str = "default") -> dict[str, Any]:
    """Read KV and judge the fleet (no streams or buckets are created)."""
    errors = require("nats.js.errors")
    names = Names(collection)
    js = nc.jetstream()
    try:
        membership = Membership(
            js, names, await js.key_value(names.kv), await js.key_value(names.hb_kv)
        )
    except errors.BucketNotFoundError as exc:
        raise FleetError(f"no fleet for collection {collection!r} on this NATS server") from exc
    config = await membership.config()
    if config is None:
        raise FleetError(f"collection {collection!r} has no fleet config yet")
    return judge(
        config,
        await membership.members(),
        await membership.shardmap(),
        await membership.heartbeats(),
    )


def judge(
    config: FleetConfig,
    members: dict[str, Any],
    shardmap: dict[int, list[str]],
    heartbeats: dict[str, dict[str, Any]],
    now: float | None = None,
) -> dict[str, Any]:
    """Pure function from KV contents to the status document (tested without NATS)."""
    now = now or time.time()
    problems: list[str] = []
    alive = {n for n, hb in heartbeats.items() if now - hb["ts"] <= config.stale_after_s}
    nodes = {}
    for node in sorted(set(members) | set(heartbeats)):
        hb = heartbeats.get(node)
        state = hb["state"] if node in alive and hb else "unreachable"
        nodes[node] = {
            "state": state,
            "heartbeat_age_s": round(now - hb["ts"], 2) if hb else None,
            "http": (hb or {}).get("http") or members.get(node, {}).get("http"),
            "lsn": (hb or {}).get("lsn"),
            "encoders": (hb or {}).get("encoders", {}),
        }
        if node not in alive:
            problems.append(f"node {node} unreachable")
    shards = {}
    for shard in range(config.shards):
        replicas = {}
        for node in shardmap.get(shard, []):
            replicas[node] = _replica(
                config, node, shard, heartbeats.get(node), node in alive, problems
            )
        serving = sum(r["state"] == SERVING for r in replicas.values())
        if serving < config.replicas:
            problems.append(f"shard {shard}: {serving}/{config.replicas} replicas serving")
        shards[str(shard)] = {"replicas": replicas, "serving": serving}
    return {
        "collection": config.collection,
        "green": not problems,
        "problems": problems,
        "config": {
            "shards": config.shards,
            "replicas": config.replicas,
            "policies": config.policies.to_dict(),
        },
        "nodes": nodes,
        "shards": shards,
        "ts": now,
    }


def _replica(
    config: FleetConfig,
    node: str,
    shard: int,
    hb: dict[str, Any] | None,
    alive: bool,
    problems: list[str],
) -> dict[str, Any]:
    info = (hb or {}).get("shards", {}).get(str(shard))
    if not alive or info is None:
        return {"state": "unreachable", "reason": "no heartbeat", "modalities": {}}
    out = {k: info.get(k) for k in ("state", "reason", "quarantines", "served", "in_read_group")}
    out["modalities"] = info.get("modalities", {})
    if info["state"] != SERVING:
        problems.append(f"shard {shard} on {node}: {info['state']} ({info.get('reason')})")
    for modality, m in out["modalities"].items():
        policy = config.policies[modality]
        if (m.get("lag_s") or 0) > policy.max_lag_s:
            problems.append(f"shard {shard} on {node}: {modality} lag {m['lag_s']} s")
        if (m.get("drift") or 0) > policy.drift_threshold:
            problems.append(f"shard {shard} on {node}: {modality} drift {m['drift']}")
    return out


def render(status: dict[str, Any]) -> str:
    """Plain-text tables for the terminal."""
    lines = [f"collection {status['collection']}: " + ("GREEN" if status["green"] else "NOT GREEN")]
    lines.append(f"{'node':<16} {'state':<13} {'hb age':>7} {'lsn':>8}  http")
    for node, n in status["nodes"].items():
        age = "-" if n["heartbeat_age_s"] is None else f"{n['heartbeat_age_s']:.1f}s"
        lines.append(
            f"{node:<16} {n['state']:<13} {age:>7} {n['lsn'] or '-':>8}  {n['http'] or ''}"
        )
    lines.append("")
    lines.append(
        f"{'shard':<6} {'node':<16} {'state':<13} {'modality':<9} {'applied':>8} "
        f"{'pending':>8} {'lag s':>7} {'drift':>8}"
    )
    for shard, s in status["shards"].items():
        for node, r in s["replicas"].items():
            mods = {
                m: v for m, v in r["modalities"].items() if v.get("applied") or v.get("sampled")
            }
            if not mods:
                lines.append(f"{shard:<6} {node:<16} {r['state']:<13}")
            for modality, m in mods.items():
                drift = "-" if m.get("drift") is None else f"{m['drift']:.4f}"
                lines.append(
                    f"{shard:<6} {node:<16} {r['state']:<13} {modality:<9} {m['applied']:>8} "
                    f"{m['pending']:>8} {m['lag_s']:>7} {drift:>8}"
                )
    if status["problems"]:
        lines += ["", "problems:"] + [f"  - {p}" for p in status["problems"]]
    return "\n".join(lines)
