"""A replica proves it is complete before it serves (real processes, real NATS server).

3 nodes, 2 shards x 2 replicas, hash encoder, exact flat index (tests/fleet_worker.py). Under a
steady load of searches — each for one document's exact text — a replica restarted with the same
``--node-id`` on a wiped ``--db``, and a "new machine" (an empty directory) with an old node id,
must replay the log before they answer: no search may come back complete-but-wrong. A healthy
idle fleet logs no tracebacks.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgerag import Engine
from edgerag.fleet.ingest_stream import IngestClient
from edgerag.fleet.sharding import shard_for
from edgerag.fleet.status import read_status
from fleet_harness import (
    CheckedLoad,
    Fleet,
    fault_row,
    make_docs,
    no_tracebacks,
    running_fleet,
    settled,
    wait_for,
)

pytest.importorskip("nats")

NODES = ["n1", "n2", "n3"]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with running_fleet(tmp_path, NODES) as fl:
        yield fl


async def _put(fl: Fleet, docs: dict[str, str]) -> None:
    client = IngestClient(fl.nc, fl.names)
    for name, text in docs.items():
        result = await client.put(name, text.encode(), doc_id=name, wait=True)
        assert result["outcome"] == "added", result


async def _green(fl: Fleet) -> bool:
    """Every replica serving in the view AND the full verdict (positions vs the log's
    high-water marks, encoders) green."""
    if not fl.all_serving():
        return False
    return bool((await read_status(fl.nc))["green"])


def _history_states(fl: Fleet, node: str) -> list[str]:
    shards = fl.view.heartbeats[node]["shards"].values()
    return [f"{state}: {reason}" for s in shards for _, state, reason in s["history"]]


async def _replace_replica(
    fl: Fleet, node: str, docs: dict[str, str], scenario: str, db: Path | None = None
) -> None:
    """Stop ``node``, give it an empty store (wiped, or another directory), start it with the
    same id under load; check it never answered wrong and ends complete."""
    load = CheckedLoad(fl, docs)
    load.start()
    await wait_for(lambda: load.searches >= 10, 30, "load running")
    fl.stop_node(node)
    if db is None:
        shutil.rmtree(fl.tmp / node)  # the disk was wiped
    t0 = time.monotonic()
    await asyncio.to_thread(fl.start_node, node, db=db)
    await wait_for(lambda: _green(fl), 60, f"{node} complete and the fleet green")
    seconds = time.monotonic() - t0
    await asyncio.sleep(1.0)  # keep searching on the green fleet
    await load.stop()
    fault_row(scenario, load, seconds)
    assert load.searches > 20 and not load.errors, load.errors[:3]
    assert not load.wrong, load.wrong[:3]
    assert load.partials == 0, load.partial_shards[:3]
    # It knew its store was behind its consumers and replayed instead of resuming.
    assert "replaying from 1" in fl.log(node)
    states = _history_states(fl, node)
    assert any(s.startswith("syncing: applying the log up to") for s in states), states
    # Its store holds every document of its shards.
    mine = [s for s, nodes in fl.view.shardmap.items() if node in nodes]
    shards = fl.view.heartbeats[node]["shards"]
    assert all("text" in shards[str(s)]["replayed"] for s in mine), shards
    fl.stop_node(node)
    with Engine.open(db or fl.tmp / node) as engine:
        for name in docs:
            held = engine.store.document(name) is not None
            assert held == (shard_for(name, fl.shards) in mine), name
    await asyncio.to_thread(fl.start_node, node, db=db)
    await wait_for(lambda: _green(fl), 60, f"{node} back after the check")


def test_wiped_and_new_machine_replicas_replay_before_serving(fleet: Fleet) -> None:
    docs = make_docs(30, seed=3)

    async def scenario() -> None:
        await fleet.connect()
        try:
            await wait_for(lambda: _green(fleet), 30, "fleet green")
            # An idle healthy fleet logs no tracebacks (it used to log one a second).
            await asyncio.sleep(3.0)
            assert not no_tracebacks(fleet, NODES)
            await _put(fleet, docs)
            await settled(fleet)
            await _replace_replica(fleet, "n2", docs, "replica restarted on a wiped --db")
            await _replace_replica(
                fleet,
                "n3",
                docs,
                "new machine (empty --db) with an old --node-id",
                db=fleet.tmp / "n3-new-machine",
            )
            assert not no_tracebacks(fleet, NODES)
        finally:
            await fleet.disconnect()

    asyncio.run(scenario())
