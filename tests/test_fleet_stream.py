"""Streaming ingestion through a real NATS server: a broker restart in the middle of a stream
loses and duplicates nothing; a device publishing over MQTT lands in the fleet.

Nodes use the hash encoder and the exact flat index (tests/fleet_worker.py): ingestion
plumbing is what is verified here, not embedding quality.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from edgerag.fleet.ingest_stream import IngestClient
from edgerag.fleet.replication import MODALITIES, canonical
from edgerag.fleet.server import free_port
from fleet_harness import Fleet, make_docs, wait_for

pytest.importorskip("nats")


@pytest.fixture
def fleet(tmp_path: Path):
    fl = Fleet(tmp_path, shards=2, replicas=1)
    try:
        fl.http_port = free_port()
        fl.start_node("n1", http_port=fl.http_port)  # with the HTTP service (fleet view)
        fl.start_node("n2")
        yield fl
    finally:
        fl.close()


async def _put_retrying(client: IngestClient, name: str, text: str) -> None:
    """A producer that retries until the broker acknowledges (the same message id each time,
    so a publish whose ack was lost is not stored twice)."""
    for _ in range(100):
        try:
            await client.put(name, text.encode(), doc_id=name)
            return
        except Exception:
            await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never acknowledged")


def test_stream_survives_broker_restart_nothing_lost_or_duplicated(fleet: Fleet) -> None:
    docs = make_docs(60, seed=11)

    async def scenario() -> None:
        await fleet.connect()
        await wait_for(fleet.all_serving, 20, "replicas serving")
        client = IngestClient(fleet.nc, fleet.names)
        names = list(docs)
        for name in names[:30]:
            await _put_retrying(client, name, docs[name])
        fleet.server.restart()  # in the middle of the stream (and of its processing)
        for name in names[30:]:
            await _put_retrying(client, name, docs[name])

        async def all_in_log() -> bool:
            info = await fleet.js.stream_info(fleet.names.ops_stream)
            return info.state.messages >= len(docs)

        await wait_for(all_in_log, 30, "every document in the replication log")
        await asyncio.sleep(1.0)  # redeliveries, if any, would land now
        info = await fleet.js.stream_info(fleet.names.ops_stream)
        assert info.state.messages == len(docs)  # nothing duplicated
        for name in names:  # nothing lost
            op, _ = await canonical(fleet.js, fleet.names, name, fleet.shards, "text")
            assert op is not None and op.kind == "upsert", name
        await wait_for(fleet.all_serving, 20, "replicas serving after the restart")
        last = info.state.last_seq
        for name in names[::6]:
            # A fetch lost in the restart is redelivered after the consumer's ack wait (5 s):
            # read-your-writes waits for it.
            got = await fleet.router.search(
                docs[name], k=1, mode="dense", min_seq=last, deadline_s=12.0
            )
            assert not got.partial and got.hits[0]["doc_id"] == name
        await fleet.disconnect()

    asyncio.run(scenario())


def _status_cli(url: str, as_json: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).parent / "edgerag"), "fleet", "status", "--nats", url]
    return subprocess.run(
        cmd + (["--json"] if as_json else []), capture_output=True, text=True, timeout=30
    )


def _mqtt_packet(kind: int, body: bytes) -> bytes:
    out, n = bytearray([kind]), len(body)
    while True:  # MQTT variable-length "remaining length"
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out) + body


def _mqtt_str(s: str) -> bytes:
    return struct.pack(">H", len(s)) + s.encode()


def mqtt_publish_qos1(port: int, topic: str, payload: bytes) -> None:
    """A minimal MQTT 3.1.1 client: CONNECT, PUBLISH (QoS 1), wait for PUBACK, DISCONNECT."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        connect = _mqtt_str("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 30)
        sock.sendall(_mqtt_packet(0x10, connect + _mqtt_str("device-7")))
        assert sock.recv(4)[:1] == b"\x20", "no CONNACK"
        sock.sendall(_mqtt_packet(0x32, _mqtt_str(topic) + struct.pack(">H", 1) + payload))
        assert sock.recv(4)[:1] == b"\x40", "no PUBACK"
        sock.sendall(b"\xe0\x00")


def test_mqtt_device_event_lands_in_the_fleet(fleet: Fleet) -> None:
    async def scenario() -> None:
        await fleet.connect()
        await wait_for(fleet.all_serving, 20, "replicas serving")
        event = {
            "id": "press-7-event-1",
            "text": "hydraulic press 7 overheated at the pump seal",
            "metadata": {"line": "7"},
        }
        assert fleet.server.mqtt_port
        await asyncio.to_thread(
            mqtt_publish_qos1,
            fleet.server.mqtt_port,
            "edgerag/default/in/press7/evt1",
            json.dumps(event).encode(),
        )

        async def landed() -> bool:
            for modality in MODALITIES:
                op, _ = await canonical(fleet.js, fleet.names, event["id"], fleet.shards, modality)
                if op is not None:
                    return True
            return False

        await wait_for(landed, 15, "the MQTT event in the replication log")
        await wait_for(fleet.all_serving, 10, "serving")
        got = await fleet.router.search(
            "press overheated",
            k=3,
            mode="dense",
            min_seq=(await fleet.js.stream_info(fleet.names.ops_stream)).state.last_seq,
        )
        assert got.hits and got.hits[0]["doc_id"] == event["id"]
        assert got.hits[0]["metadata"]["device"] == "press7"
        # The node's HTTP service shows the fleet view.
        httpx = pytest.importorskip("httpx")
        async with httpx.AsyncClient() as http:
            reply = await http.get(f"http://127.0.0.1:{fleet.http_port}/fleet/status")
        assert reply.status_code == 200, reply.text
        view = reply.json()
        assert view["node"]["node"] == "n1" and set(view["fleet"]["nodes"]) == {"n1", "n2"}
        # The rolling-update gate: `edgerag fleet status` exits 0 only when green.
        green = await asyncio.to_thread(_status_cli, fleet.server.url)
        assert green.returncode == 0, green.stdout + green.stderr
        assert json.loads(green.stdout)["green"] is True
        fleet.stop_node("n2")
        await wait_for(lambda: not fleet.view.alive("n2"), 5, "n2 gone")
        red = await asyncio.to_thread(_status_cli, fleet.server.url, False)
        assert red.returncode == 1 and "NOT GREEN" in red.stdout and "n2" in red.stdout
        await fleet.disconnect()

    asyncio.run(scenario())
