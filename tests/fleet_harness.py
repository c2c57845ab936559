"""Helpers for the fleet tests: a real nats-server, node processes, a client-side view.

Every process started here is tracked and killed in :meth:`Fleet.close` (no orphans).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
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
        self,
        node_id: str,
        skew: bool = False,
        ingest: bool = True,
        http_port: int | None = None,
        db: Path | None = None,
        dim: int = 64,
    ) -> None:
        cmd = [
            sys.executable,
            str(WORKER),
            "--nats",
            self.server.url,
            "--db",
            str(db or self.tmp / node_id),
            "--dim",
            str(dim),
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

    def node_state(self, node: str) -> str | None:
        hb = self.view.heartbeats.get(node)
        return hb["state"] if hb is not None and self.view.alive(node) else None

    def position(self, node: str, shard: int, modality: str = "text") -> int | None:
        hb = self.view.heartbeats.get(node, {})
        info = hb.get("shards", {}).get(str(shard))
        return info["modalities"][modality].get("position") if info else None

    def applied(self, node: str, modality: str = "text") -> int:
        hb = self.view.heartbeats.get(node, {})
        return sum(s["modalities"][modality]["applied"] for s in hb.get("shards", {}).values())


# --------------------------------------------------------------------------- fault scenarios
EDGERAG = Path(sys.executable).with_name("edgerag")


@contextlib.contextmanager
def running_fleet(
    tmp: Path, nodes: list[str], shards: int = 2, replicas: int = 2
) -> Iterator[Fleet]:
    """A fleet with ``nodes`` started, closed (processes killed, NATS removed) on exit."""
    fl = Fleet(tmp, shards=shards, replicas=replicas)
    try:
        for node in nodes:
            fl.start_node(node)
        yield fl
    finally:
        fl.close()


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real ``edgerag`` command (in a thread from async tests: it blocks)."""
    return subprocess.run(
        [str(EDGERAG), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


class CheckedLoad:
    """Searches in the background, each for one document's exact text (the hash encoder gives
    that document cosine 1.0). A complete, non-partial answer without it is a *wrong answer*:
    the silent miss this suite exists to catch. ``absent`` documents must never come back."""

    def __init__(
        self, fl: Fleet, expected: dict[str, str], absent: dict[str, str] | None = None
    ) -> None:
        self.fl = fl
        self.queries = [(doc, text, True) for doc, text in expected.items()]
        self.queries += [(doc, text, False) for doc, text in (absent or {}).items()]
        self.searches = 0
        self.partials = 0
        self.partial_shards: list[dict[int, Any]] = []  # per-shard routing of each partial
        self.wrong: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[str] = []
        self.answered: list[tuple[float, str]] = []  # (send time, node) per shard answer
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        i = 0
        while True:
            doc, text, present = self.queries[i % len(self.queries)]
            i += 1
            sent = time.time()
            try:
                # A generous deadline: on a loaded box a lone replica can take seconds, and a
                # partial should mean "no replica could answer", not "the box was busy".
                got = await self.fl.router.search(text, k=5, mode="dense", deadline_s=5.0)
            except Exception as exc:  # recorded, asserted on later
                self.errors.append(repr(exc))
                await asyncio.sleep(0.05)
                continue
            self.searches += 1
            self.answered += [(sent, m["node"]) for m in got.shards.values() if m.get("node")]
            found = doc in {h["doc_id"] for h in got.hits}
            if got.partial:
                self.partials += 1
                self.partial_shards.append(got.shards)
            elif found != present:
                self.wrong.append((doc, got.shards))
            await asyncio.sleep(0.02)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def fault_row(scenario: str, load: CheckedLoad, seconds_to_green: float | None) -> str:
    """One row of the fault table (docs/notes/fleet.md); also appended to the file named by
    EDGERAG_FAULT_TABLE when it is set."""
    green = "-" if seconds_to_green is None else f"{seconds_to_green:.1f}"
    row = f"| {scenario} | {load.searches} | {len(load.wrong)} | {load.partials} | {green} |"
    print(f"FAULT-ROW {row}")  # noqa: T201
    target = os.environ.get("EDGERAG_FAULT_TABLE")
    if target:
        with open(target, "a") as fh:
            fh.write(row + "\n")
    return row


def no_tracebacks(fl: Fleet, nodes: list[str]) -> dict[str, str]:
    """Node logs that contain a Python traceback (a healthy fleet logs none)."""
    out = {}
    for node in nodes:
        text = fl.log(node)
        if "Traceback" in text:
            start = text.index("Traceback")
            out[node] = text[max(0, start - 300) : start + 1500]
    return out


async def settled(fl: Fleet, timeout: float = 30) -> None:
    """Wait until every serving replica reports a stored position at the log's high-water mark
    of its shard, for every modality (then a search without ``min_seq`` sees every write)."""
    from edgerag.fleet.positions import high_water

    marks = {
        (s, m): await high_water(fl.js, fl.names, s, m)
        for s in range(fl.shards)
        for m in ("text", "image", "audio", "video")
    }

    def done() -> bool:
        for (shard, modality), mark in marks.items():
            for node in fl.view.healthy_replicas(shard):
                if (fl.position(node, shard, modality) or 0) < mark:
                    return False
        return True

    await wait_for(done, timeout, "replicas at the log's high-water mark")
