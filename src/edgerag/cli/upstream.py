"""``edgerag upstream``: add a Qdrant/Milvus upstream, run its sink, show its lag."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import click

from edgerag.cli import main
from edgerag.cli.core import DB
from edgerag.store.sqlite import Store
from edgerag.types import Query
from edgerag.upstream.base import DEFAULT_KEY_ENV, KINDS, UpstreamSpec, open_upstream
from edgerag.upstream.sink import Sink, upstream_status
from edgerag.upstream.state import UpstreamState

NAME = click.option("--name", default="default", show_default=True, help="Upstream name.")


def open_store(db: Path) -> Store:
    if not (db / "store.db").exists():
        raise click.ClickException(f"{db}: no edgerag collection here (run `edgerag ingest` first)")
    return Store(db / "store.db")


@main.group()
def upstream() -> None:
    """Ship this collection to a Qdrant or Milvus upstream and watch its lag."""


@upstream.command("add")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("target")
@DB
@click.option("--collection", default="edgerag", show_default=True, help="Upstream collection.")
@NAME
@click.option(
    "--api-key-env",
    default=DEFAULT_KEY_ENV,
    show_default=True,
    help="Environment variable holding the API key / token (never stored).",
)
def add(kind: str, target: str, db: Path, collection: str, name: str, api_key_env: str) -> None:
    """Register an upstream. TARGET: a URL (http/https), or a local path for the embedded
    modes (Qdrant local mode directory, Milvus Lite *.db file)."""
    if "://" not in target and target != ":memory:":
        target = str(Path(target).resolve())
    spec = UpstreamSpec(kind, target, collection, api_key_env)
    store = open_store(db)
    state = UpstreamState(store)
    try:
        backend = open_upstream(spec)
        try:  # refuse now, not at the first sync, if the upstream holds another encoder
            for space in store.spaces().values():
                backend.ensure_space(space)
        finally:
            backend.close()
        state.add(name, spec)
        click.echo(f"upstream {name}: {kind} {spec.redacted_target()} collection {collection}")
    finally:
        state.close()
        store.close()


@upstream.command("sync")
@DB
@NAME
@click.option("--once", is_flag=True, help="Ship what is pending, then exit.")
@click.option("--batch", default=256, show_default=True, help="Op-log rows per shipment.")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between polls.")
def sync(db: Path, name: str, once: bool, batch: int, interval: float) -> None:
    """Run the sink: ship the op log from the last acknowledged LSN (resumable after a crash)."""
    store = open_store(db)
    state = UpstreamState(store)
    backend = open_upstream(state.spec(name))
    sink = Sink(store, backend, state, name, batch=batch)
    try:
        if once:
            shipped = sink.sync_once()
            click.echo(f"shipped {shipped} ops; lag_lsn {sink.status()['lag_lsn']}")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        sink.run(stop, interval=interval)
    finally:
        backend.close()
        state.close()
        store.close()


@upstream.command("status")
@DB
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(db: Path, as_json: bool) -> None:
    """Each upstream's shipped LSN and lag (``lag_lsn`` ops, ``lag_s`` seconds)."""
    store = open_store(db)
    state = UpstreamState(store)
    try:
        rows: list[dict[str, Any]] = [upstream_status(store, state, n) for n in state.names()]
    finally:
        state.close()
        store.close()
    if as_json:
        click.echo(json.dumps({"upstreams": rows}, indent=2))
        return
    if not rows:
        click.echo("no upstream (add one with `edgerag upstream add`)")
    for r in rows:
        err = f"  error: {r['error']}" if r["error"] else ""
        click.echo(
            f"{r['name']}: {r['kind']} {r['target']} [{r['collection']}] shipped "
            f"{r['shipped_lsn']}/{r['last_lsn']} lag {r['lag_lsn']} ops {r['lag_s']} s{err}"
        )


def federated(
    db: Path,
    query: Query,
    k: int,
    filters: dict[str, Any],
    mode: str,
    fusion: str,
    boosts: dict[str, float] | None,
    no_ocr: bool,
    scope: str,
    as_json: bool,
    name: str = "default",
) -> None:
    """``edgerag search --scope upstream|all|auto``: the edge plus its upstream tier."""
    from edgerag.cli.core import open_engine
    from edgerag.upstream.federated import federated_search

    with open_engine(db) as engine:
        state = UpstreamState(engine.store)
        backend = None
        try:
            if name in state.names():
                backend = open_upstream(state.spec(name))
            response = federated_search(
                engine,
                backend,
                query,
                k=k,
                filters=filters,
                mode=mode,
                scope=scope,
                ocr=not no_ocr,
                fusion=fusion,
                boosts=boosts,
            )
        finally:
            if backend is not None:
                backend.close()
            state.close()
    if as_json:
        click.echo(json.dumps(response.to_dict()))
        return
    if not response.hits:
        click.echo("no results")
    for rank, (hit, tier) in enumerate(zip(response.hits, response.tiers, strict=True), 1):
        click.echo(
            f"{rank:>2}. {hit.score:.4f}  [{tier}] {Path(hit.source).name}  [{hit.modality}]"
        )
        snippet = " ".join(hit.text.split())
        click.echo(f"    {snippet[:160]}{'…' if len(snippet) > 160 else ''}")
    if response.partial:
        click.echo(f"partial: {'; '.join(response.reasons)}")


@upstream.command("retention")
@DB
@NAME
@click.option("--max-age", multiple=True, help="MODALITY=DURATION kept on the edge (image=7d).")
@click.option("--max-bytes", multiple=True, help="MODALITY=SIZE kept on the edge (audio=500MB).")
@click.option("--clear", is_flag=True, help="Remove the policy (keep everything on the edge).")
def retention(
    db: Path, name: str, max_age: tuple[str, ...], max_bytes: tuple[str, ...], clear: bool
) -> None:
    """Set (or show) the retention policy: what the edge evicts once this upstream holds it."""
    from edgerag.upstream.retention import RetentionPolicy

    store = open_store(db)
    state = UpstreamState(store)
    try:
        if clear or max_age or max_bytes:
            policy = RetentionPolicy.parse(list(max_age), list(max_bytes))
            state.set_retention(name, policy.to_json())
        click.echo(state.row(name)["retention"])
    finally:
        state.close()
        store.close()


@upstream.command("evict")
@DB
@NAME
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def evict_cmd(db: Path, name: str, as_json: bool) -> None:
    """Apply the retention policy once: evict from the edge what upstream acknowledged."""
    from edgerag.cli.core import open_engine
    from edgerag.upstream.retention import evict

    with open_engine(db) as engine:
        state = UpstreamState(engine.store)
        backend = open_upstream(state.spec(name))
        try:
            report = evict(engine, backend, state, name)
        finally:
            backend.close()
            state.close()
    summary = report.to_dict()
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(
            f"evicted {summary['evicted']} documents ({summary['freed_bytes']} bytes); "
            f"kept {summary['kept_unacknowledged']} not yet acknowledged upstream"
        )
