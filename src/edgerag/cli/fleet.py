"""Fleet commands: ``edgerag node``,
``edgerag fleet status|search|put|delete|dev-server|remove-node``."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from edgerag.cli import main
from edgerag.cli.core import DB, open_engine
from edgerag.config import ENCODERS

NATS = click.option(
    "--nats",
    "nats_url",
    default="nats://127.0.0.1:4222",
    show_default=True,
    help="NATS server URL (JetStream enabled).",
)
COLLECTION = click.option(
    "--collection", default="default", show_default=True, help="Fleet collection name."
)


def _default_node_id() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64] or "node"


@main.command()
@NATS
@DB
@click.option("--node-id", default=None, help="Stable node id (default: host name).")
@click.option("--http-port", type=int, default=None, help="Also serve the HTTP service here.")
@COLLECTION
@click.option(
    "--shards",
    type=int,
    default=4,
    show_default=True,
    help="Shard count (only used when the fleet config is created).",
)
@click.option(
    "--replicas",
    type=int,
    default=2,
    show_default=True,
    help="Replicas per shard (only used when the fleet config is created).",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="MODALITY=LAG_S:DRIFT[:RETRIES]",
    help="Sync policy override, e.g. image=5:0.02:3 (fleet creation only).",
)
@click.option("--heartbeat", type=float, default=1.0, show_default=True, help="Heartbeat seconds.")
@click.option(
    "--drift-interval",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between drift checks.",
)
@click.option(
    "--encoder",
    type=click.Choice(list(ENCODERS)),
    default=None,
    help="Text encoder for a new collection directory.",
)
@click.option(
    "--backend",
    type=click.Choice(["flat", "faiss", "usearch"]),
    default=None,
    help="Index engine for a new collection directory.",
)
@click.option(
    "--quantization",
    type=click.Choice(["f32", "f16", "int8", "binary"]),
    default=None,
    help="Vector precision for a new collection directory.",
)
@click.option("--no-ingest", is_flag=True, help="Do not run a streaming-ingest worker here.")
def node(
    nats_url: str,
    db: Path,
    node_id: str | None,
    http_port: int | None,
    collection: str,
    shards: int,
    replicas: int,
    policies: tuple[str, ...],
    heartbeat: float,
    drift_interval: float,
    encoder: str | None,
    backend: str | None,
    quantization: str | None,
    no_ingest: bool,
) -> None:
    """Run a fleet node: replicate its shards, answer fleet searches, ingest the stream."""
    from edgerag.fleet.node import run_node
    from edgerag.fleet.policy import Policies
    from edgerag.fleet.shardmap import FleetConfig

    config = FleetConfig(
        collection=collection,
        shards=shards,
        replicas=replicas,
        policies=Policies().with_overrides(list(policies)),
        heartbeat_s=heartbeat,
        drift_interval_s=drift_interval,
    )
    chosen = {"encoder": encoder, "backend": backend, "quantization": quantization}
    options = {k: v for k, v in chosen.items() if v}
    engine = open_engine(db, must_exist=False, **options)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    upstream = None
    if http_port is None:  # with HTTP, the app runs the upstream sinks (and scoped searches)
        from edgerag.upstream.service import UpstreamService

        upstream = UpstreamService(engine)
    try:
        run_node(
            engine,
            nats_url,
            node_id or _default_node_id(),
            config,
            http_port,
            ingest=not no_ingest,
            stop=stop,
        )
    except KeyboardInterrupt:
        pass
    finally:
        if upstream is not None:
            upstream.close()
        engine.close()


@main.group()
def fleet() -> None:
    """Fleet over NATS JetStream: status, search, streaming ingest, a dev server."""


async def _with_client(nats_url: str, fn: Any) -> Any:
    from edgerag.fleet.nats import connect

    nc = await connect(
        nats_url, name="edgerag-cli", allow_reconnect=False, max_reconnect_attempts=1
    )
    try:
        return await fn(nc)
    finally:
        await nc.close()


async def _with_view(nats_url: str, collection: str, fn: Any) -> Any:
    """``fn(nc, js, view)`` with a started view of the fleet's membership, stopped after."""
    from edgerag.fleet.nats import Names
    from edgerag.fleet.shardmap import FleetView, Membership

    async def run(nc: Any) -> Any:
        js = nc.jetstream()
        names = Names(collection)
        membership = Membership(
            js, names, await js.key_value(names.kv), await js.key_value(names.hb_kv)
        )
        view = await FleetView(membership).start()
        try:
            return await fn(nc, js, view)
        finally:
            await view.stop()

    return await _with_client(nats_url, run)


@fleet.command()
@NATS
@COLLECTION
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
def status(nats_url: str, collection: str, as_json: bool) -> None:
    """Nodes, shards, replicas, lag and drift per modality. Exits 1 unless the fleet is green."""
    from edgerag.fleet.status import read_status, render

    doc = asyncio.run(_with_client(nats_url, lambda nc: read_status(nc, collection)))
    click.echo(json.dumps(doc, indent=2) if as_json else render(doc))
    sys.exit(0 if doc["green"] else 1)


@fleet.command()
@click.argument("query")
@NATS
@COLLECTION
@click.option("-k", default=10, show_default=True, help="Results to return.")
@click.option(
    "--mode", type=click.Choice(["hybrid", "dense", "bm25"]), default="hybrid", show_default=True
)
@click.option("--deadline", type=float, default=2.0, show_default=True, help="Seconds.")
@click.option("--json", "as_json", is_flag=True)
def search(
    query: str, nats_url: str, collection: str, k: int, mode: str, deadline: float, as_json: bool
) -> None:
    """Search every shard of the fleet (scatter-gather)."""
    from edgerag.fleet.router import Router

    async def run(nc: Any, js: Any, view: Any) -> Any:
        return await Router(nc, view, deadline).search(query, k=k, mode=mode)

    response = asyncio.run(_with_view(nats_url, collection, run))
    if as_json:
        click.echo(json.dumps(response.to_dict(), indent=2))
    else:
        if response.partial:
            click.echo(f"PARTIAL: shards {response.missing_shards} did not answer", err=True)
        for i, hit in enumerate(response.hits, 1):
            text = " ".join(hit["text"].split())[:100]
            click.echo(f"{i:>2}. {hit['score']:.4f}  {hit['source']}  {text}")


@fleet.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@NATS
@COLLECTION
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until each document is in the replication log.",
)
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for each document (with --wait).",
)
def put(
    paths: tuple[Path, ...], nats_url: str, collection: str, wait: bool, timeout: float
) -> None:
    """Publish files to the fleet's ingest stream (any node encodes them once).

    A file that fails or times out does not stop the others; every failure is listed at the
    end and the exit status is 1 if there was any."""
    from edgerag.fleet.ingest_stream import IngestClient
    from edgerag.fleet.nats import Names

    files = [
        p
        for path in paths
        for p in (sorted(path.rglob("*")) if path.is_dir() else [path])
        if p.is_file()
    ]

    failures: list[tuple[Path, str]] = []

    async def run(nc: Any) -> None:
        client = IngestClient(nc, Names(collection))
        for path in files:
            try:
                result = await client.put(
                    path.name,
                    path.read_bytes(),
                    doc_id=str(path.resolve()),
                    wait=wait,
                    timeout=timeout,
                )
            except Exception as exc:  # timeout, NATS error, unreadable file: report, go on
                failures.append((path, str(exc)))
                click.echo(f"{path}: FAILED: {exc}", err=True)
                continue
            outcome = str(result.get("outcome", "queued"))
            if outcome.startswith("error"):
                failures.append((path, outcome))
            click.echo(f"{path}: {outcome} (seq {result['seq']})")

    asyncio.run(_with_client(nats_url, run))
    if failures:
        click.echo(f"{len(failures)} of {len(files)} files failed:", err=True)
        for path, reason in failures:
            click.echo(f"  {path}: {reason}", err=True)
        sys.exit(1)


@fleet.command()
@click.argument("doc_id")
@NATS
@COLLECTION
@click.option(
    "--wait",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for every replica to confirm.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def delete(doc_id: str, nats_url: str, collection: str, wait: float, as_json: bool) -> None:
    """Delete a document from every replica of the fleet (GDPR erasure).

    The delete goes into the replication log, so a replica that is down applies it when it
    returns. Prints which replicas confirmed; exits 1 while any has not confirmed yet."""
    from edgerag.fleet.erase import erase

    async def run(nc: Any, js: Any, view: Any) -> Any:
        return await erase(js, view, doc_id, origin="cli", wait_s=wait)

    erasure = asyncio.run(_with_view(nats_url, collection, run))
    if as_json:
        click.echo(json.dumps(erasure.to_dict(), indent=2))
    else:
        click.echo(
            f"deleted {erasure.doc_id} (shard {erasure.shard}): confirmed by "
            + (", ".join(erasure.confirmed) or "no replica yet")
        )
        if erasure.pending:
            click.echo(
                "not confirmed yet: "
                + ", ".join(erasure.pending)
                + " (the delete is in the log: a replica that is down applies it when it returns)"
            )
    sys.exit(1 if erasure.pending else 0)


@fleet.command("remove-node")
@click.argument("node_id")
@NATS
@COLLECTION
def remove_node(node_id: str, nats_url: str, collection: str) -> None:
    """Remove a node for good: its replicas move to other nodes (snapshot + catch-up)."""
    from edgerag.fleet.nats import Names
    from edgerag.fleet.shardmap import Membership

    async def run(nc: Any) -> None:
        js = nc.jetstream()
        names = Names(collection)
        membership = Membership(
            js, names, await js.key_value(names.kv), await js.key_value(names.hb_kv)
        )
        await membership.remove(node_id)
        config = await membership.config()
        if config:
            await membership.update_shardmap(config)

    asyncio.run(_with_client(nats_url, run))
    click.echo(f"removed {node_id}")


@fleet.command("dev-server")
@click.option("--port", type=int, default=4222, show_default=True)
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="JetStream storage directory (default: a temp dir, removed on exit).",
)
@click.option("--mqtt", is_flag=True, help="Also open the MQTT listener (devices).")
def dev_server(port: int, store: Path | None, mqtt: bool) -> None:
    """Run a local nats-server with JetStream for development (Ctrl-C stops it)."""
    from edgerag.fleet.server import NatsServer

    server = NatsServer(store_dir=store, port=port, mqtt=mqtt).start()
    # SIGTERM (and SIGINT, even where a shell ignores it) stops the server cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.stop())
    click.echo(
        f"NATS {server.url} (JetStream in {server.store_dir})"
        + (f", MQTT on {server.mqtt_port}" if server.mqtt_port else "")
    )
    try:
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.cleanup()
