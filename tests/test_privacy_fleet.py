"""Erasure records across a 3-node fleet (real NATS server, real node processes, real CLI).

3 nodes, 3 shards x 2 replicas. A document is deleted fleet-wide while one of its replicas
is down: the fleet's record says who confirmed and who is pending; once the replica returns
and replays, the record's live confirmation names both. Each replica keeps its own record
(sha256 of the id, LSN, origin), and a byte scan of every replica's directory, and of the
replication log's files, finds no fragment of the document's text or vectors.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bytescan import find_fragments
from edgerag.fleet.ingest_stream import IngestClient
from edgerag.fleet.sharding import shard_for
from edgerag.privacy.erasure import doc_hash
from fleet_harness import Fleet, make_docs, run_cli, running_fleet, settled, wait_for

pytest.importorskip("nats")

NODES = ["n1", "n2", "n3"]
SECRET_WORDS = [b"quillonbrack", b"zephyrmontis"]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with running_fleet(tmp_path, NODES, shards=3, replicas=2) as fl:
        yield fl


def _vector_needles(db: Path, doc_id: str) -> list[bytes]:
    conn = sqlite3.connect(f"file:{db / 'store.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT v.vector FROM vectors v JOIN items i ON i.key = v.key WHERE i.doc_id = ?",
            (doc_id,),
        ).fetchall()
    finally:
        conn.close()
    return [bytes(r[0])[:64] for r in rows]


def test_fleet_erasure_records_and_byte_scan_on_every_replica(fleet: Fleet) -> None:
    docs = make_docs(9, seed=31)
    victim = "doc-004.txt"
    docs[victim] = "quillonbrack zephyrmontis " + docs[victim]

    async def scenario() -> None:
        await fleet.connect()
        try:
            await wait_for(fleet.all_serving, 30, "fleet serving")
            client = IngestClient(fleet.nc, fleet.names)
            for name, text in docs.items():
                result = await client.put(name, text.encode(), doc_id=name, wait=True)
                assert result["outcome"] == "added", result
            await settled(fleet)
            shard = shard_for(victim, fleet.shards)
            owners = sorted(fleet.view.shardmap[shard])
            down, up = owners
            vectors = _vector_needles(fleet.tmp / up, victim)
            assert vectors, "the replica should hold the document's vectors"
            ops_dir = fleet.server.store_dir
            needles = SECRET_WORDS + vectors
            for owner in owners:
                assert find_fragments(fleet.tmp / owner, needles), owner
            assert find_fragments(ops_dir, vectors), "the replication log carries the vectors"

            fleet.signal(down, signal.SIGKILL)
            await wait_for(lambda: not fleet.view.alive(down), 10, f"{down} seen down")
            url = fleet.server.url
            cli = await asyncio.to_thread(
                run_cli, "fleet", "delete", victim, "--nats", url, "--wait", "5"
            )
            assert cli.returncode == 1, cli.stdout + cli.stderr  # one replica pending

            report = await asyncio.to_thread(
                run_cli, "erasure-report", victim, "--nats", url, "--json"
            )
            assert report.returncode == 1, report.stdout + report.stderr
            fleet_record = json.loads(report.stdout)["fleet"]
            assert fleet_record["doc_hash"] == doc_hash(victim)
            assert fleet_record["confirmed"] == [up] and fleet_record["pending"] == [down]
            assert fleet_record["confirmed_now"] == [up] and fleet_record["pending_now"] == [down]

            await asyncio.to_thread(fleet.start_node, down)
            await wait_for(fleet.all_serving, 30, f"{down} back and serving")
            await settled(fleet)
            report = await asyncio.to_thread(
                run_cli, "erasure-report", victim, "--nats", url, "--json"
            )
            assert report.returncode == 0, report.stdout + report.stderr
            fleet_record = json.loads(report.stdout)["fleet"]
            assert fleet_record["confirmed_now"] == owners and fleet_record["pending_now"] == []
            assert fleet_record["pending"] == [down]  # what the deleting client saw, kept
            text = await asyncio.to_thread(run_cli, "erasure-report", victim, "--nats", url)
            assert f"confirmed by {', '.join(owners)}" in text.stdout, text.stdout
        finally:
            await fleet.disconnect()

        # Every replica that held it: a local record with the delete's origin; no fragment.
        for node in NODES:
            fleet.stop_node(node)
        for owner in owners:
            local = run_cli("erasure-report", victim, "--db", str(fleet.tmp / owner), "--json")
            assert local.returncode == 0, owner + local.stdout + local.stderr
            [record] = json.loads(local.stdout)["local"]
            assert record["doc_hash"] == doc_hash(victim) and record["origin"] == "cli"
            assert record["items"] == len(vectors) and record["lsn"] > 0
        for node in NODES:
            assert find_fragments(fleet.tmp / node, needles) == [], node
        # The replication log keeps only the delete op of the document (earlier ops erased).
        streams = next(ops_dir.rglob(fleet.names.ops_stream))
        assert find_fragments(streams, needles) == []

    asyncio.run(scenario())
