"""The replicator's position comes from its store (real NATS server, in-process replicator).

A replica whose store is behind what its durable consumer acked — wiped, restored from an old
copy, or a new machine with the node id — replays from its stored position instead of resuming
at the ack floor; and it is complete exactly when its stored position reaches the shard's
high-water mark.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from conftest import FAST
from edgerag import Engine
from edgerag.encoders.fake import HashEncoder
from edgerag.fleet.nats import Names, connect, ensure_layout
from edgerag.fleet.replication import Replicator, publish_op
from edgerag.fleet.server import NatsServer
from edgerag.fleet.sharding import shard_for
from fleet_harness import make_docs, wait_for

pytest.importorskip("nats")

SHARDS = 2


def _op(name: str, text: str):
    with Engine.open(":memory:", FAST) as scratch:
        scratch.ingest([(name, text.encode())], {"doc_id": name})
        return scratch.store.materialize(name)


async def _replicate(engine: Engine, js, names: Names, shard: int, docs: dict[str, str]) -> None:
    replicator = Replicator(engine, js, names, "r1", ["text"])
    await replicator.start_shard(shard)
    try:
        targets = await replicator.high_water(shard)
        await wait_for(lambda: replicator.complete(shard, targets), 20, "replica complete")
        mine = [d for d in docs if shard_for(d, SHARDS) == shard]
        assert mine and all(engine.store.document(d) is not None for d in mine)
        assert replicator.position(shard, "text") == targets["text"] > 0
    finally:
        await replicator.stop()


def test_wiped_or_restored_store_replays_instead_of_resuming(tmp_path: Path) -> None:
    docs = make_docs(12, seed=4)

    async def scenario(url: str) -> None:
        nc = await connect(url)
        js, names = nc.jetstream(), Names("default")
        await ensure_layout(js, names)
        try:
            half = dict(list(docs.items())[:6])
            for name, text in half.items():
                await publish_op(js, names, _op(name, text), SHARDS, origin="w")
            shard = shard_for(next(iter(half)), SHARDS)
            with Engine.open(tmp_path / "r1", FAST, encoder=HashEncoder()) as engine:
                await _replicate(engine, js, names, shard, half)
            shutil.copytree(tmp_path / "r1", tmp_path / "backup")  # an old backup
            for name, text in list(docs.items())[6:]:
                await publish_op(js, names, _op(name, text), SHARDS, origin="w")
            with Engine.open(tmp_path / "r1", FAST, encoder=HashEncoder()) as engine:
                await _replicate(engine, js, names, shard, docs)  # resumes, gets the rest
            # Wiped disk, same node id: the consumer acked everything, the store has nothing.
            shutil.rmtree(tmp_path / "r1")
            with Engine.open(tmp_path / "r1", FAST, encoder=HashEncoder()) as engine:
                await _replicate(engine, js, names, shard, docs)
            # The old backup put back: behind its consumer, replays the rest.
            shutil.rmtree(tmp_path / "r1")
            shutil.copytree(tmp_path / "backup", tmp_path / "r1")
            with Engine.open(tmp_path / "r1", FAST, encoder=HashEncoder()) as engine:
                await _replicate(engine, js, names, shard, docs)
        finally:
            await nc.close()

    with NatsServer(store_dir=tmp_path / "nats") as server:
        asyncio.run(scenario(server.url))
