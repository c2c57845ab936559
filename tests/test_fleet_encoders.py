"""Encoder identity is a fleet invariant (real processes, real NATS server).

A node whose encoder differs from the one recorded in the fleet config refuses to serve and to
ingest and never publishes; the fleet status names it and is not green. Two cases: a new node
with a 32-d encoder joining an empty 64-d fleet, and an existing replica restarted on its data
with another encoder version.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from edgerag.fleet.ingest_stream import IngestClient
from edgerag.fleet.replication import canonical
from edgerag.fleet.status import read_status
from fleet_harness import (
    CheckedLoad,
    Fleet,
    fault_row,
    make_docs,
    run_cli,
    settled,
    wait_for,
)

pytest.importorskip("nats")


@pytest.fixture
def fleet(tmp_path: Path):
    fl = Fleet(tmp_path)
    try:
        yield fl
    finally:
        fl.close()


def _refusal(fl: Fleet, node: str) -> str:
    hb = fl.view.heartbeats[node]
    assert hb["state"] == "refused" and hb["shards"] == {}, hb
    return str(hb["reason"])


def test_new_node_with_another_encoder_refuses_and_never_publishes(fleet: Fleet) -> None:
    docs = make_docs(12, seed=5)

    async def scenario() -> None:
        fleet.start_node("n1")
        fleet.start_node("n2")
        await fleet.connect()
        try:
            await wait_for(fleet.all_serving, 30, "n1, n2 serving")
            assert fleet.view.config.encoders == {"text": "hash/1/64d"}
            fleet.start_node("n3", dim=32)  # no data yet: the fleet is empty
            await wait_for(lambda: fleet.node_state("n3") == "refused", 20, "n3 refused")
            reason = _refusal(fleet, "n3")
            assert "hash/1/32d" in reason and "hash/1/64d" in reason, reason
            assert "refuses to serve, ingest or publish" in fleet.log("n3")
            # It never joined: no replica of any shard moved to it.
            assert "n3" not in fleet.view.members
            assert all("n3" not in nodes for nodes in fleet.view.shardmap.values())

            async def refusal_in_status() -> bool:
                status = await read_status(fleet.nc)
                assert not status["green"]
                return any(p.startswith("node n3 refused") for p in status["problems"])

            # (a loaded box can delay one heartbeat past 3 periods: then n3 reads unreachable)
            await wait_for(refusal_in_status, 20, "n3's refusal in fleet status")

            async def cli_names_refusal() -> bool:
                cli = await asyncio.to_thread(
                    run_cli, "fleet", "status", "--nats", fleet.server.url
                )
                assert cli.returncode == 1, cli.stdout + cli.stderr
                return "node n3 refused: encoder differs" in cli.stdout

            await wait_for(cli_names_refusal, 30, "`edgerag fleet status` naming the refusal")
            # Ingest goes on through n1 and n2; every op in the log carries the fleet's vectors.
            client = IngestClient(fleet.nc, fleet.names)
            for name, text in docs.items():
                result = await client.put(name, text.encode(), doc_id=name, wait=True)
                assert result["outcome"] == "added", result
            for name in docs:
                op, headers = await canonical(fleet.js, fleet.names, name, fleet.shards, "text")
                assert op is not None and op.origin in ("n1", "n2"), (name, op and op.origin)
                vectors = op.vectors["text"]
                assert (vectors.encoder, vectors.version) == ("hash", "1")
                assert vectors.vectors.shape[1] == 64
            assert fleet.view.heartbeats["n3"]["published"] == 0
            await settled(fleet)
            load = CheckedLoad(fleet, docs)
            load.start()
            await wait_for(lambda: load.searches >= 30, 30, "searches")
            await load.stop()
            assert not load.wrong and not load.errors
            assert load.partials == 0, load.partial_shards[:3]
            assert "n3" not in {node for _, node in load.answered}
            fault_row("new node with another encoder (32-d beside 64-d), no data", load, None)
        finally:
            await fleet.disconnect()

    asyncio.run(scenario())


def test_replica_restarted_with_another_encoder_version_refuses(fleet: Fleet) -> None:
    docs = make_docs(16, seed=9)

    async def scenario() -> None:
        for node in ("n1", "n2", "n3"):
            fleet.start_node(node)
        await fleet.connect()
        try:
            await wait_for(fleet.all_serving, 30, "fleet serving")
            client = IngestClient(fleet.nc, fleet.names)
            for name, text in docs.items():
                await client.put(name, text.encode(), doc_id=name, wait=True)
            await settled(fleet)
            load = CheckedLoad(fleet, docs)
            load.start()
            await wait_for(lambda: load.searches >= 10, 30, "load running")
            fleet.stop_node("n3")
            t_skew = time.time()
            # Same id, same dimension, another version: re-embeds its store on open.
            await asyncio.to_thread(fleet.start_node, "n3", True)
            await wait_for(lambda: fleet.node_state("n3") == "refused", 20, "n3 refused")
            assert "hash/2-skewed/64d" in _refusal(fleet, "n3")
            shards = [s for s, nodes in fleet.view.shardmap.items() if "n3" in nodes]
            assert shards  # still a member: its replicas stay assigned, and unserved

            async def refused_replicas() -> bool:
                status = await read_status(fleet.nc)
                assert not status["green"]
                replicas = [status["shards"][str(s)]["replicas"]["n3"] for s in shards]
                return all(r["state"] == "refused" for r in replicas)

            await wait_for(refused_replicas, 20, "n3's replicas refused in fleet status")
            await asyncio.sleep(2.0)  # searches go on against the remaining replicas
            # The operator rolls n3 back to the fleet's encoder: it replays and rejoins.
            fleet.stop_node("n3")
            t_fix, t_fix_wall = time.monotonic(), time.time()
            await asyncio.to_thread(fleet.start_node, "n3")

            async def green() -> bool:
                return fleet.all_serving() and (await read_status(fleet.nc))["green"]

            await wait_for(green, 30, "n3 serving with the fleet's encoder")
            seconds = time.monotonic() - t_fix
            await load.stop()
            assert not load.wrong, load.wrong[:3]
            assert load.partials == 0 and not load.errors, load.partial_shards[:3]
            assert not [ts for ts, n in load.answered if n == "n3" and t_skew < ts < t_fix_wall]
            fault_row("replica restarted with another encoder version, with data", load, seconds)
        finally:
            await fleet.disconnect()

    asyncio.run(scenario())
