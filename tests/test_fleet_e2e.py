"""Fleet end to end with real processes and a real NATS server: 3 nodes, 2 shards x 2 replicas.

Nodes use the hash encoder and the exact flat index (tests/fleet_worker.py): what is verified
here is replication, routing and fault handling, not embedding quality.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import FAST
from edgerag import Engine
from edgerag.encoders.fake import HashEncoder
from edgerag.fleet.ingest_stream import IngestClient
from edgerag.fleet.router import Router
from edgerag.fleet.sharding import shard_for
from edgerag.store.ops import DELETE, Op
from fleet_harness import Fleet, make_docs, running_fleet, settled, wait_for

pytest.importorskip("nats")

NODES = ["n1", "n2", "n3"]
QUERIES = [
    "pump seal torque",
    "alarm pressure sensor",
    "battery charger cable",
    "boiler burner chimney",
    "lathe spindle chuck",
    "coolant filter hose",
]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with running_fleet(tmp_path, NODES) as fl:
        yield fl


async def _ingest(fl: Fleet, docs: dict[str, str]) -> int:
    client = IngestClient(fl.nc, fl.names)
    last = 0
    for name, text in docs.items():
        result = await client.put(name, text.encode(), doc_id=name, wait=True)
        assert result["outcome"] == "added", result
        last = max(last, result["op_seq"])
    return last


def test_fleet_equals_single_node_and_deletes_reach_every_replica(fleet: Fleet) -> None:
    docs = make_docs(40)

    async def scenario() -> None:
        await fleet.connect()
        try:
            await wait_for(fleet.all_serving, 20, "every replica serving")
            assert {n for nodes in fleet.view.shardmap.values() for n in nodes} == set(NODES)
            last_seq = await _ingest(fleet, docs)
            # A router that encodes each question once for every node (the fleet's encoder).
            encoding = Router(fleet.nc, fleet.view, 2.0, HashEncoder(64))
            assert encoding._query_vector("pump")["encoder"] == "hash/1/64d"  # it does send one
            with Engine.open(":memory:", FAST) as single:
                for name, text in docs.items():
                    single.ingest([(name, text.encode())], {"doc_id": name})
                for query in QUERIES:
                    expected = single.search(query, k=8, mode="dense").hits
                    for router in (fleet.router, encoding):
                        got = await router.search(query, k=8, mode="dense", min_seq=last_seq)
                        assert not got.partial, got.shards
                        assert same_ranking(
                            [(h["id"], h["score"]) for h in got.hits],
                            [(h.id, h.score) for h in expected],
                        ), query
                hybrid = await fleet.router.search(QUERIES[0], k=5, mode="hybrid")
                assert len(hybrid.hits) == 5 and not hybrid.partial
                assert all("fused" in h["scores"] for h in hybrid.hits)

            # Replay of the same stream input is a no-op (idempotent ingestion).
            client = IngestClient(fleet.nc, fleet.names)
            name = next(iter(docs))
            again = await client.put(name, docs[name].encode(), doc_id=name, wait=True)
            assert again["outcome"] == "unchanged" or again["duplicate"]

            # A delete published by one writer reaches every replica of the shard.
            victim = "doc-005.txt"
            shard = shard_for(victim, fleet.shards)
            seq = await fleet.publish(_delete(victim))
            got = await fleet.router.search(docs[victim], k=40, mode="dense", min_seq=seq)
            assert victim not in {h["doc_id"] for h in got.hits}
            survivors = [d for d in docs if d != victim and shard_for(d, fleet.shards) == shard]
            # min_seq waited for the replica that answered; the shard's other replica may still
            # be fetching the delete (on a loaded box) before it is stopped and inspected.
            await settled(fleet)
            for node in fleet.view.shardmap[shard]:
                fleet.stop_node(node)
                with Engine.open(fleet.tmp / node) as replica:
                    assert replica.store.document(victim) is None
                    assert all(replica.store.document(d) is not None for d in survivors)
        finally:
            await fleet.disconnect()

    asyncio.run(scenario())


def same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> bool:
    """Equal scores in the same order, and the same ids within each group of equal scores (the
    order of exact ties is arbitrary; the hash encoder makes ties common)."""
    if [round(s, 5) for _, s in got] != [round(s, 5) for _, s in want]:
        return False
    cut = [round(s, 5) for _, s in want]
    last = cut[-1] if cut else None
    groups_got: dict[float, set[str]] = {}
    groups_want: dict[float, set[str]] = {}
    for (gid, gs), (wid, ws) in zip(got, want, strict=True):
        groups_got.setdefault(round(gs, 5), set()).add(gid)
        groups_want.setdefault(round(ws, 5), set()).add(wid)
    # A tie group cut by k may legitimately differ in which members made the cut.
    return all(groups_got[s] == groups_want[s] for s in groups_want if s != last)


def _delete(doc_id: str) -> Op:
    return Op(kind=DELETE, doc_id=doc_id)
