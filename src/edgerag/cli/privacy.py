"""``edgerag erasure-report``: the proof that a document was erased (the collection's privacy
settings are made by ``edgerag init``, cli/crypt.py)."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from edgerag.cli import main
from edgerag.cli.core import open_engine
from edgerag.errors import ConfigError, NotFoundError


@main.command("erasure-report")
@click.argument("doc_id")
@click.option("--db", type=click.Path(path_type=Path), default=None, help="Collection directory.")
@click.option("--nats", "nats_url", default=None, help="Fleet NATS URL: the fleet's record.")
@click.option("--collection", default="default", show_default=True, help="Fleet collection.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def erasure_report(
    doc_id: str, db: Path | None, nats_url: str | None, collection: str, as_json: bool
) -> None:
    """Show the proof that DOC_ID was erased: this collection's records (--db) and/or the
    fleet's (--nats: which replicas confirmed). Exits 1 when there is no record, or while a
    replica has not confirmed yet."""
    if db is None and nats_url is None:
        raise ConfigError("give --db DIR, --nats URL, or both")
    out: dict[str, Any] = {}
    if db is not None:
        with open_engine(db) as engine:
            out["local"] = engine.erasure_report(doc_id)
            out["live"] = engine.store.document(doc_id) is not None
    if nats_url is not None:
        out["fleet"] = asyncio.run(_fleet_report(nats_url, collection, doc_id))
    missing = (db is not None and not out["local"]) or (
        nats_url is not None and out["fleet"] is None
    )
    pending = bool(out.get("fleet") and out["fleet"]["pending_now"])
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        _print(doc_id, out)
    sys.exit(1 if missing or pending else 0)


async def _fleet_report(nats_url: str, collection: str, doc_id: str) -> dict[str, Any] | None:
    from edgerag.cli.fleet import _with_view
    from edgerag.fleet.erase import report

    async def run(nc: Any, js: Any, view: Any) -> dict[str, Any] | None:
        try:
            return await report(js, view, doc_id)
        except NotFoundError:
            return None

    result: dict[str, Any] | None = await _with_view(nats_url, collection, run)
    return result


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _print(doc_id: str, out: dict[str, Any]) -> None:
    if "local" in out:
        if not out["local"]:
            click.echo(f"no erasure record of {doc_id!r} in this collection")
        for r in out["local"]:
            origin = f", issued by {r['origin']}" if r["origin"] else ""
            click.echo(
                f"erased sha256:{r['doc_hash']} at {_when(r['ts'])} (LSN {r['lsn']}{origin}): "
                f"{r['items']} items, {r['vectors']} vectors removed"
            )
        if out.get("live"):
            click.echo(f"note: {doc_id!r} was ingested again after the erasure and is live")
    if "fleet" in out:
        fleet = out["fleet"]
        if fleet is None:
            click.echo(f"the fleet has no erasure record of {doc_id!r}")
            return
        click.echo(
            f"fleet: erased sha256:{fleet['doc_hash']} at {_when(fleet['ts'])} "
            f"(shard {fleet['shard']}, log seqs {fleet['seqs']}); confirmed by "
            + (", ".join(fleet["confirmed_now"]) or "no replica")
        )
        if fleet["pending_now"]:
            click.echo("not confirmed yet: " + ", ".join(fleet["pending_now"]))
