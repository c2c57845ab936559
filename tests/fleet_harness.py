"""Helpers for the fleet tests: a real nats-server, node processes, a client-side view.

Every process started here is tracked and killed in :meth:`Fleet.close` (no orphans).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgerag.encoders.fake import HashEncoder
from edgerag.fleet.nats import Names, connect
from edgerag.fleet.replication import publish_op
from edgerag.fleet.router import Router
from edgerag.fleet.server import NatsServer
from edgerag.fleet.shardmap import FleetView, Membership
from edgerag.store.ops import UPSERT, DocumentRecord, ItemRecord, Op, SpaceVectors
from edgerag.types import item_key

WORKER = Path(__file__).with_name("fleet_worker.py")
WORDS = (
    "pump seal valve bearing grease motor alarm pressure sensor torque bolt flange gasket "
    "filter coolant compressor belt pulley shaft coupling impeller nozzle hose clamp relay "
    "fuse breaker inverter encoder spindle chuck lathe mill drill tap reamer gauge caliper "
    "micrometer thermostat heater fan duct damper boiler burner chimney tank level float "
    "switch panel display keypad battery charger cable connector terminal solder wire"
).split()


def make_docs(n: int, seed: int = 7) -> dict[str, str]:
    rng = random.Random(seed)
    return {
        f"doc-{i:03d}.txt": " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60)))
        for i in range(n)
    }


def image_op(doc_id: str, caption: str, encoder: HashEncoder | None = None) -> Op:
    """A synthetic image document (caption-as-text vector): replication does not care how an
    image item's vectors were made, only that they travel and land intact."""
    encoder = encoder or HashEncoder()
    key = item_key(doc_id, 0)
    return Op(
        kind=UPSERT,
        doc_id=doc_id,
        document=DocumentRecord(
            doc_id=doc_id,
            source=doc_id,
            modality="image",
            mime="image/png",
            content_hash=f"img-{abs(hash(caption))}",
            size=len(caption),
            title=caption,
        ),
        items=[
            ItemRecord(key=key, item_id=f"{doc_id}#0", position=0, modality="image", text=caption)
        ],
        vectors={
            "text": SpaceVectors(
                encoder.id,
                encoder.version,
                np.array([key], dtype=np.int64),
                encoder.encode([caption]),
            )
        },
    )


async def wait_for(
    predicate: Callable[[], Any] | Callable[[], Awaitable[Any]],
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


class Fleet:
    """A NATS server plus node processes, and a client connection with a live view."""

    def __init__(
        self,
        tmp: Path,
        shards: int = 2,
        replicas: int = 2,
        policies: list[str] | None = None,
        drift_interval: float = 1.0,
    ) -> None:
        self.tmp = tmp
        self.shards = shards
        self.replicas = replicas
        self.policies = policies or [
            "text=2:0.05:3",
            "image=1.5:0.02:3",
            "audio=1.5:0.02:3",
            "video=1.5:0.02:3",
        ]
        self.drift_interval = drift_interval
        self.server = NatsServer(store_dir=tmp / "nats", ping_interval=1.0, mqtt=True).start()
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.names = Names("default")

    # processes ---------------------------------------------------------------------------
    def start_node(
        self, node_id: str, skew: bool = False, ingest: bool = True, http_port: int | None = None
    ) -> None:
        cmd = [
            sys.executable,
            str(WORKER),
            "--nats",
            self.server.url,
            "--db",
            str(self.tmp / node_id),
            "--node-id",
            node_id,
            "--shards",
            str(self.shards),
            "--replicas",
            str(self.replicas),
            "--heartbeat",
            "0.3",
            "--drift-interval",
            str(self.drift_interval),
        ]
        cmd += [a for p in self.policies for a in ("--policy", p)]
        cmd += ["--skew"] if skew else []
        cmd += [] if ingest else ["--no-ingest"]
        cmd += ["--http-port", str(http_port)] if http_port else []
        log = open(self.tmp / f"{node_id}.log", "a")  # noqa: SIM115
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        self.procs[node_id] = proc
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY"), f"{node_id} failed: {self.log(node_id)[-3000:]}"

    def log(self, node_id: str) -> str:
        return (self.tmp / f"{node_id}.log").read_text(errors="replace")

    def signal(self, node_id: str, sig: int) -> None:
        os.kill(self.procs[node_id].pid, sig)
        if sig == signal.SIGKILL:
            self.procs[node_id].wait()

    def stop_node(self, node_id: str) -> None:
        proc = self.procs.pop(node_id, None)
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        for node_id in list(self.procs):
            proc = self.procs.pop(node_id)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.server.cleanup()

    # client side -------------------------------------------------------------------------
    async def connect(self) -> None:
        self.nc = await connect(self.server.url, name="test-client")
        self.js = self.nc.jetstream()
        self.membership = await Membership.open(self.js, self.names)
        self.view = await FleetView(self.membership).start()
        self.router = Router(self.nc, self.view, deadline_s=2.0)

    async def disconnect(self) -> None:
        await self.view.stop()
        await self.nc.close()

    async def publish(self, op: Op) -> int:
        return await publish_op(self.js, self.names, op, self.shards, origin="test")

    def shard_state(self, node: str, shard: int) -> str | None:
        hb = self.view.heartbeats.get(node)
        if hb is None or not self.view.alive(node):
            return None
        return hb["shards"].get(str(shard), {}).get("state")

    def all_serving(self) -> bool:
        return bool(self.view.shardmap) and all(
            len(self.view.healthy_replicas(s)) == self.replicas for s in range(self.shards)
        )

    def applied(self, node: str, modality: str = "text") -> int:
        hb = self.view.heartbeats.get(node, {})
        return sum(s["modalities"][modality]["applied"] for s in hb.get("shards", {}).values())
