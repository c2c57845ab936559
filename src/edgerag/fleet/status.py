"""Fleet status: nodes, shards, replicas, per-modality lag and drift, and one verdict (green).

Green means: every member heartbeats and none is refused; every node's encoders are the
fleet's; every shard has its full replica count serving; no replica is over its modality's lag
budget or drift threshold; and no replica's stored log position is behind the shard's
high-water mark (when the caller read it from the stream) or behind another replica's.
``edgerag fleet status`` exits non-zero otherwise, which makes it the gate of a rolling update
(upgrade one node, wait for green, go on).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from edgerag._optional import require
from edgerag.errors import FleetError
from edgerag.fleet.nats import Names
from edgerag.fleet.positions import high_water
from edgerag.fleet.shardmap import SERVING, FleetConfig, Membership

REFUSED = "refused"

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
    marks: dict[str, dict[str, int]] = {}
    for shard in range(config.shards):
        for modality in config.policies.modalities:
            mark = await high_water(js, names, shard, modality)
            marks.setdefault(str(shard), {})[modality] = mark
    return judge(
        config,
        await membership.members(),
        await membership.shardmap(),
        await membership.heartbeats(),
        high_water=marks,
    )


def judge(
    config: FleetConfig,
    members: dict[str, Any],
    shardmap: dict[int, list[str]],
    heartbeats: dict[str, dict[str, Any]],
    now: float | None = None,
    high_water: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """Pure function from KV contents (and the log's high-water marks, when the caller read
    them: shard → modality → last sequence) to the status document (tested without NATS)."""
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
            "reason": (hb or {}).get("reason"),
        }
        if node not in alive:
            problems.append(f"node {node} unreachable")
            continue
        if state == REFUSED:
            problems.append(f"node {node} refused: {hb.get('reason')}")  # type: ignore[union-attr]
        for space, theirs in sorted(nodes[node]["encoders"].items()):
            ours = config.encoders.get(space)
            if ours is not None and theirs != ours and state != REFUSED:
                problems.append(f"node {node}: {space} encoder {theirs}, the fleet's is {ours}")
    shards = {}
    for shard in range(config.shards):
        replicas = {}
        for node in shardmap.get(shard, []):
            replicas[node] = _replica(
                config, node, shard, heartbeats.get(node), node in alive, problems
            )
        _compare_positions(shard, replicas, (high_water or {}).get(str(shard), {}), problems)
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
            "encoders": config.encoders,
            "policies": config.policies.to_dict(),
        },
        "nodes": nodes,
        "shards": shards,
        "ts": now,
    }


def _compare_positions(
    shard: int,
    replicas: dict[str, dict[str, Any]],
    marks: dict[str, int],
    problems: list[str],
) -> None:
    """A replica whose stored position is below the log's high-water mark or below another
    replica's is behind (it may still be applying: the gate waits for it)."""
    reporting = {n: r for n, r in replicas.items() if r.get("modalities")}
    modalities = {m for r in reporting.values() for m in r["modalities"]} | set(marks)
    for modality in sorted(modalities):
        positions = {
            n: r["modalities"].get(modality, {}).get("position") for n, r in reporting.items()
        }
        known = [p for p in positions.values() if p is not None]
        reference = max([marks.get(modality, 0), *known])
        for node, position in sorted(positions.items()):
            if position is not None and position < reference:
                replicas[node]["behind"] = True
                problems.append(
                    f"shard {shard} on {node}: {modality} behind (applied log position "
                    f"{position}, shard at {reference})"
                )


def _replica(
    config: FleetConfig,
    node: str,
    shard: int,
    hb: dict[str, Any] | None,
    alive: bool,
    problems: list[str],
) -> dict[str, Any]:
    info = (hb or {}).get("shards", {}).get(str(shard))
    if alive and hb is not None and hb.get("state") == REFUSED:
        return {"state": REFUSED, "reason": hb.get("reason"), "modalities": {}}
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
        if m.get("drift") is not None and m["drift"] > policy.drift_threshold:
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
        f"{'shard':<6} {'node':<16} {'state':<13} {'modality':<9} {'position':>9} "
        f"{'pending':>8} {'lag s':>7} {'drift':>8}"
    )
    for shard, s in status["shards"].items():
        for node, r in s["replicas"].items():
            mods = {
                m: v
                for m, v in r["modalities"].items()
                if v.get("position") or v.get("applied") or v.get("sampled")
            }
            if not mods:
                lines.append(f"{shard:<6} {node:<16} {r['state']:<13}")
            for modality, m in mods.items():
                drift = "unknown" if m.get("drift") is None else f"{m['drift']:.4f}"
                lines.append(
                    f"{shard:<6} {node:<16} {r['state']:<13} {modality:<9} "
                    f"{m.get('position', m['applied']):>9} "
                    f"{m['pending']:>8} {m['lag_s']:>7} {drift:>8}"
                )
    if status["problems"]:
        lines += ["", "problems:"] + [f"  - {p}" for p in status["problems"]]
    return "\n".join(lines)
