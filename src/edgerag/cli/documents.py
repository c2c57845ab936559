"""``edgerag documents``: what a collection holds, one line (or JSON object) per document."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from edgerag.cli import main
from edgerag.cli.core import DB, open_engine

PAGE = 1000


def document_rows(engine: Any) -> list[dict[str, Any]]:
    """Every document as the command shows it: id, source, modality, items, ingested at."""
    rows: list[dict[str, Any]] = []
    while True:
        batch = engine.documents(limit=PAGE, offset=len(rows))
        rows += [
            {
                "id": d["doc_id"],
                "source": d["source"],
                "modality": d["modality"],
                "items": d["items"],
                "ingested_at": datetime.fromtimestamp(d["updated"], UTC).isoformat(
                    timespec="seconds"
                ),
                "title": d.get("title"),
                "size": d["size"],
                "redactions": d.get("redactions") or {},
            }
            for d in batch
        ]
        if len(batch) < PAGE:
            return rows


@main.command()
@DB
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def documents(db: Path, as_json: bool) -> None:
    """List the documents of a collection (id, source, modality, items, ingested at).

    `edgerag delete` accepts the source (or its file name, when unambiguous) shown here.
    """
    with open_engine(db) as engine:
        rows = document_rows(engine)
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no documents")
        return
    width = max(len(r["source"]) for r in rows)
    width = min(max(width, len("SOURCE")), 60)
    click.echo(f"{'SOURCE':<{width}}  {'MODALITY':<8}  {'ITEMS':>5}  {'INGESTED (UTC)':<19}  ID")
    for r in rows:
        source = r["source"] if len(r["source"]) <= width else "…" + r["source"][-width + 1 :]
        click.echo(
            f"{source:<{width}}  {r['modality']:<8}  {r['items']:>5}  "
            f"{r['ingested_at'][:19].replace('T', ' '):<19}  {r['id']}"
            + (f"  redacted {_redacted(r['redactions'])}" if r["redactions"] else "")
        )
    click.echo(f"{len(rows)} documents")


def _redacted(counts: dict[str, int]) -> str:
    """``EMAIL 2, PHONE 1``: what PII scrubbing replaced in a document, by kind."""
    return ", ".join(f"{kind} {n}" for kind, n in counts.items())
