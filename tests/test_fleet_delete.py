"""Fleet-wide delete and re-put (real processes, real NATS server, real ``edgerag`` CLI).

3 nodes, 3 shards x 2 replicas, so a node does not hold every shard. A delete sent to a node
that does not hold the document (HTTP) or from the CLI reaches every replica of the owner
shard, and the caller learns which replicas confirmed; a replica that was down applies it when
it returns; putting the same file again afterwards ingests it again.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edgerag import Engine
from edgerag.fleet.ingest_stream import IngestClient
from edgerag.fleet.nats import Names, connect, ensure_layout
from edgerag.fleet.server import NatsServer, free_port
from edgerag.fleet.sharding import shard_for
from edgerag.server.auth import KeyStore
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

NODES = ["n1", "n2", "n3"]


@pytest.fixture
def fleet(tmp_path: Path):
    fl = Fleet(tmp_path, shards=3, replicas=2)
    try:
        fl.ports, fl.keys = {}, {}
        for node in NODES:
            (tmp_path / node).mkdir()
            fl.keys[node] = KeyStore(tmp_path / node).create("write", "test")[1]
            fl.ports[node] = free_port()
            fl.start_node(node, http_port=fl.ports[node])
        yield fl
    finally:
        fl.close()


def _http_delete(fl: Fleet, node: str, doc_id: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{fl.ports[node]}/documents/{doc_id}",
        method="DELETE",
        headers={"X-API-Key": fl.keys[node]},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def _put_all(fl: Fleet, docs: dict[str, str]) -> None:
    client = IngestClient(fl.nc, fl.names)
    for name, text in docs.items():
        result = await client.put(name, text.encode(), doc_id=name, wait=True)
        assert result["outcome"] == "added", result
    await settled(fl)


async def _found(fl: Fleet, doc: str, text: str) -> bool:
    got = await fl.router.search(text, k=5, mode="dense")
    assert not got.partial, got.shards
    return doc in {h["doc_id"] for h in got.hits}


def test_delete_from_a_node_without_the_shard_then_cli_then_re_put(fleet: Fleet) -> None:
    docs = make_docs(15, seed=21)

    async def scenario() -> None:
        await fleet.connect()
        try:
            await wait_for(fleet.all_serving, 30, "fleet serving")
            await _put_all(fleet, docs)
            # A node, and a document of a shard that node does not hold.
            node, victim = next(
                (n, d)
                for n in NODES
                for d in docs
                if n not in fleet.view.shardmap[shard_for(d, fleet.shards)]
            )
            owners = sorted(fleet.view.shardmap[shard_for(victim, fleet.shards)])
            status, body = await asyncio.to_thread(_http_delete, fleet, node, victim)
            assert status == 200, body
            assert body["deleted"] == victim
            assert body["fleet"]["confirmed"] == owners and body["fleet"]["pending"] == []
            assert not await _found(fleet, victim, docs[victim])
            status, body = await asyncio.to_thread(_http_delete, fleet, node, victim)
            assert status == 404, body

            # The same file again: ingested again (was "unchanged" inside the dedupe window).
            client = IngestClient(fleet.nc, fleet.names)
            again = await client.put(victim, docs[victim].encode(), doc_id=victim, wait=True)
            assert again["outcome"] == "added" and not again["duplicate"], again
            await settled(fleet)
            assert await _found(fleet, victim, docs[victim])

            # From the CLI this time; it names the replicas that confirmed.
            cli = await asyncio.to_thread(
                run_cli, "fleet", "delete", victim, "--nats", fleet.server.url, "--json"
            )
            assert cli.returncode == 0, cli.stdout + cli.stderr
            outcome = json.loads(cli.stdout)
            assert outcome["confirmed"] == owners and outcome["pending"] == []
            assert not await _found(fleet, victim, docs[victim])
            survivors = {d: t for d, t in docs.items() if d != victim}
            for doc in list(survivors)[:5]:
                assert await _found(fleet, doc, survivors[doc]), doc
            for owner in owners:  # gone from the store, FTS and indexes of every replica
                fleet.stop_node(owner)
                with Engine.open(fleet.tmp / owner) as engine:
                    assert engine.store.document(victim) is None
                    assert not engine.search(docs[victim], k=20, mode="bm25").hits or all(
                        h.doc_id != victim for h in engine.search(docs[victim], 20).hits
                    )
        finally:
            await fleet.disconnect()

    asyncio.run(scenario())


def test_delete_while_a_replica_is_down_applies_when_it_returns(fleet: Fleet) -> None:
    docs = make_docs(15, seed=22)

    async def scenario() -> None:
        await fleet.connect()
        try:
            await wait_for(fleet.all_serving, 30, "fleet serving")
            await _put_all(fleet, docs)
            victim = next(iter(docs))
            shard = shard_for(victim, fleet.shards)
            down, up = sorted(fleet.view.shardmap[shard])
            fleet.signal(down, signal.SIGKILL)
            await wait_for(lambda: not fleet.view.alive(down), 10, f"{down} seen down")
            cli = await asyncio.to_thread(
                run_cli, "fleet", "delete", victim, "--nats", fleet.server.url, "--wait", "5"
            )
            # Not confirmed everywhere yet: exit 1, naming who did and who did not.
            assert cli.returncode == 1, cli.stdout + cli.stderr
            assert f"confirmed by {up}" in cli.stdout and f"not confirmed yet: {down}" in (
                cli.stdout
            ), cli.stdout
            survivors = {d: t for d, t in docs.items() if d != victim}
            load = CheckedLoad(fleet, survivors, absent={victim: docs[victim]})
            load.start()
            t0 = time.monotonic()
            await asyncio.to_thread(fleet.start_node, down, http_port=fleet.ports[down])
            await wait_for(fleet.all_serving, 30, f"{down} back and serving")
            seconds = time.monotonic() - t0
            await asyncio.sleep(1.0)
            await load.stop()
            fault_row("delete while a replica is down, then it returns", load, seconds)
            assert not load.wrong, load.wrong[:3]
            assert load.partials == 0 and not load.errors, load.partial_shards[:3]
            fleet.stop_node(down)
            with Engine.open(fleet.tmp / down) as engine:
                assert engine.store.document(victim) is None
                for doc in survivors:
                    if shard_for(doc, fleet.shards) == shard:
                        assert engine.store.document(doc) is not None, doc
        finally:
            await fleet.disconnect()

    asyncio.run(scenario())


def test_fleet_put_keeps_going_after_a_timeout_and_reports_every_failure(tmp_path: Path) -> None:
    """No node is running, so no file is ingested in time: every one is still published
    (none is skipped after the first timeout), all are listed, and the exit status is 1."""
    files = tmp_path / "in"
    files.mkdir()
    for i in range(3):
        (files / f"f{i}.txt").write_text(f"pump seal number {i}")

    async def layout(url: str) -> int:
        nc = await connect(url)
        try:
            names = Names("default")
            await ensure_layout(nc.jetstream(), names)
            info = await nc.jetstream().stream_info(names.in_stream)
            return int(info.state.messages)
        finally:
            await nc.close()

    with NatsServer(store_dir=tmp_path / "nats") as server:
        assert asyncio.run(layout(server.url)) == 0
        cli = run_cli("fleet", "put", str(files), "--nats", server.url, "--timeout", "1")
        assert cli.returncode == 1, cli.stdout + cli.stderr
        assert "3 of 3 files failed" in cli.stderr, cli.stderr
        for i in range(3):
            assert f"f{i}.txt: not ingested within 1.0 s" in cli.stderr, cli.stderr
        assert asyncio.run(layout(server.url)) == 3  # every file reached the ingest stream
