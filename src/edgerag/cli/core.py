"""Core commands: ingest, search, delete, stats, demo."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from edgerag import crypto
from edgerag.cli import main
from edgerag.config import ENCODERS, MODES, EngineConfig
from edgerag.engine import Engine
from edgerag.index.base import IndexConfig
from edgerag.retrieval.filters import parse_cli_filters
from edgerag.types import Query, SearchResponse

_DB = click.option(
    "--db",
    "db",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Collection directory (created on first ingest).",
)


def _use_key_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """``--key-file`` wins over the environment; every store this process opens reads it (and
    re-reads it after a rotation)."""
    if value is None:
        return
    crypto.read_key_file(value)  # refuse a malformed or group/other-readable file right away
    os.environ.pop(crypto.KEY_ENV, None)
    os.environ[crypto.KEY_FILE_ENV] = str(value.resolve())


KEY_FILE = click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    expose_value=False,
    callback=_use_key_file,
    help=f"Key of an encrypted collection (base64, mode 0600); default ${crypto.KEY_ENV}.",
)


def DB(command: Any) -> Any:  # noqa: N802  (used as the @DB decorator, like the option it was)
    """``--db`` plus ``--key-file`` (an encrypted collection's key)."""
    return KEY_FILE(_DB(command))


def require_collection(db: Path) -> None:
    """Refuse a --db that is not a collection: a typo must not become a new, empty one."""
    if not db.exists():
        raise click.ClickException(
            f"{db}: no such directory, so no edgerag collection there (check the path; "
            "`edgerag ingest` creates a collection)"
        )
    if not (db / "store.db").exists():
        raise click.ClickException(
            f"{db}: no edgerag collection here (no store.db; run `edgerag ingest` first)"
        )


def open_engine(db: Path, must_exist: bool = True, **config: Any) -> Engine:
    if must_exist:
        require_collection(db)
    cfg = None
    if config:
        base = EngineConfig.load(db / "config.json") if (db / "config.json").exists() else None
        cfg = _merge_config(base, **config)
    return Engine.open(db, cfg)


def _differs_from_stored(db: Path, options: dict[str, str | None]) -> bool:
    """True when an option asks for something the existing collection is not (the same value
    is fine: several processes may create one collection at once)."""
    if not any(options.values()):
        return False
    stored = EngineConfig.load(db / "config.json")
    have = {
        "encoder": stored.encoder,
        "backend": stored.index.backend,
        "quantization": stored.index.quantization,
    }
    return any(v and v != have[k] for k, v in options.items())


def _merge_config(base: EngineConfig | None, **changes: Any) -> EngineConfig:
    data = json.loads(base.to_json()) if base else json.loads(EngineConfig().to_json())
    index = data["index"]
    for key in ("backend", "quantization"):
        if changes.get(key):
            index[key] = changes.pop(key)
    data.update({k: v for k, v in changes.items() if v is not None})
    data["index"] = IndexConfig(**index)
    return EngineConfig.from_dict(data)


def parse_meta(pairs: tuple[str, ...]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--meta {pair!r} is not KEY=VALUE")
        if key == "tags":
            meta.setdefault("tags", []).extend(v for v in value.split(",") if v)
        else:
            meta[key] = value
    return meta


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@DB
@click.option("--meta", multiple=True, help="Metadata KEY=VALUE for every document (tags=a,b).")
@click.option(
    "--encoder",
    type=click.Choice(list(ENCODERS)),
    default=None,
    help="Text encoder for a new collection (default minilm; minilm-q8 ingests ~2.5x faster "
    "at a small recall cost, see the README).",
)
@click.option(
    "--backend",
    type=click.Choice(["flat", "faiss", "usearch"]),
    default=None,
    help="Index engine for a new collection (default faiss).",
)
@click.option(
    "--quantization",
    type=click.Choice(["f32", "f16", "int8", "binary"]),
    default=None,
    help="Vector precision in the index (default int8 + rescoring).",
)
@click.option(
    "--scrub-pii/--no-scrub-pii",
    default=None,
    help="Redact PII before indexing (default: the collection's setting, see `edgerag init`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def ingest(
    paths: tuple[Path, ...],
    db: Path,
    meta: tuple[str, ...],
    encoder: str | None,
    backend: str | None,
    quantization: str | None,
    scrub_pii: bool | None,
    as_json: bool,
) -> None:
    """Ingest files or directories (txt, md, html, pdf) into a collection."""
    new = not (db / "store.db").exists()
    options = {"encoder": encoder, "backend": backend, "quantization": quantization}
    if not new and _differs_from_stored(db, options):
        raise click.UsageError("--encoder/--backend/--quantization only apply to a new collection")
    started = time.perf_counter()
    with open_engine(db, must_exist=False, **{k: v for k, v in options.items() if v}) as engine:
        report = _ingest_with_progress(
            engine, paths, parse_meta(meta), quiet=as_json, scrub_pii=scrub_pii
        )
    elapsed = time.perf_counter() - started
    files = len(report.added) + len(report.unchanged) + len(report.errors)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "added": report.added,
                    "unchanged": report.unchanged,
                    "errors": [{"input": s, "reason": r} for s, r in report.errors],
                    "items": report.items,
                    "lsn": report.lsn,
                }
            )
        )
    else:
        click.echo(
            f"{len(report.added)} added, {len(report.unchanged)} unchanged, "
            f"{len(report.errors)} failed; {report.items} items; LSN {report.lsn}; "
            f"{elapsed:.1f} s ({files / max(elapsed, 1e-9):.1f} files/s)"
        )
    for source, reason in report.errors:
        click.echo(f"error: {source}: {reason}", err=True)
    if report.errors:
        sys.exit(1)


def _ingest_with_progress(
    engine: Engine,
    paths: tuple[Path, ...],
    meta: dict[str, Any],
    quiet: bool,
    scrub_pii: bool | None = None,
) -> Any:
    from tqdm import tqdm

    from edgerag.ingest.documents import count_inputs

    # On a terminal: a bar with total, rate and ETA. Piped (disable=None → off when stderr is
    # not a TTY) or --json: nothing here; the command prints its one summary line.
    bar = tqdm(
        desc="ingest",
        unit="file",
        total=count_inputs(paths),
        disable=quiet or None,
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def progress(source: str, outcome: str) -> None:
        bar.set_postfix_str(f"{Path(source).name}: {outcome}", refresh=False)
        bar.update(1)

    try:
        return engine.ingest(list(paths), metadata=meta, progress=progress, scrub_pii=scrub_pii)
    finally:
        bar.close()


def print_response(response: SearchResponse, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(response.to_dict()))
        return
    if not response.hits:
        click.echo("no results")
    for rank, hit in enumerate(response.hits, start=1):
        where = f"p.{hit.page}" if hit.page else ""
        if hit.t_start is not None:
            where = f"{hit.t_start:.1f}-{hit.t_end or hit.t_start:.1f}s"
        parts = " ".join(f"{k}={v:.3f}" for k, v in hit.scores.items())
        click.echo(
            f"{rank:>2}. {hit.score:.4f}  {Path(hit.source).name} {where}  [{hit.modality}] {parts}"
        )
        if hit.metadata.get("section"):
            click.echo(f"    § {hit.metadata['section']}")
        snippet = " ".join(hit.text.split())
        click.echo(f"    {snippet[:160]}{'…' if len(snippet) > 160 else ''}")
    timings = ", ".join(f"{k} {v:.1f}" for k, v in response.timings_ms.items())
    click.echo(f"timings (ms): {timings}; plan: {response.plan}")


def parse_boosts(pairs: tuple[str, ...]) -> dict[str, float] | None:
    boosts: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            boosts[key] = float(value)
        except ValueError:
            raise click.UsageError(f"--boost {pair!r} is not MODALITY=NUMBER") from None
        if not sep or key not in ("text", "image", "audio", "video"):
            raise click.UsageError(f"--boost {pair!r}: modality must be text, image, audio, video")
    return boosts or None


def build_query(query: str | None, image: Path | None, audio: Path | None) -> Query:
    if not query and image is None and audio is None:
        raise click.UsageError("give a QUERY, --image or --audio")
    return Query(
        text=query,
        image=image.read_bytes() if image else None,
        audio=audio.read_bytes() if audio else None,
    )


QUERY_OPTIONS = [
    click.argument("query", required=False),
    DB,
    click.option(
        "--image",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A photo as (part of) the question.",
    ),
    click.option(
        "--audio",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A voice clip as (part of) the question.",
    ),
    click.option("-k", "k", default=5, show_default=True, help="Number of results."),
    click.option(
        "--filter",
        "filters",
        multiple=True,
        help="KEY=VALUE filter (repeat to AND; "
        "repeat a key for OR): modality, source (glob), tags, page, doc_id, metadata.",
    ),
    click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True),
    click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
]


def query_options(func: Any) -> Any:
    for option in reversed(QUERY_OPTIONS):
        func = option(func)
    return func


@main.command()
@query_options
@click.option(
    "--fusion",
    type=click.Choice(["early", "late"]),
    default="early",
    show_default=True,
    help="early: one fused vector and one search; late: one search per modality merged with RRF.",
)
@click.option("--boost", "boosts", multiple=True, help="MODALITY=FACTOR score multiplier.")
@click.option("--no-ocr", is_flag=True, help="Don't OCR the query photo (faster).")
@click.option(
    "--scope",
    type=click.Choice(["local", "upstream", "all", "auto"]),
    default="local",
    show_default=True,
    help="Edge only, the upstream tier only, both merged, or upstream when the edge is unsure.",
)
@click.option("--since", help="Only items ingested in this rolling window (10m, 2h, 7d).")
def search(
    query: str | None,
    db: Path,
    image: Path | None,
    audio: Path | None,
    k: int,
    filters: tuple[str, ...],
    mode: str,
    as_json: bool,
    fusion: str,
    boosts: tuple[str, ...],
    no_ocr: bool,
    scope: str,
    since: str | None,
) -> None:
    """Search a collection with text, a photo, a voice clip, or several at once."""
    from edgerag.retrieval.window import since_filter

    q = build_query(query, image, audio)
    where = since_filter(parse_cli_filters(list(filters)), since)
    if scope != "local":
        from edgerag.cli.upstream import federated

        boost = parse_boosts(boosts)
        return federated(db, q, k, where, mode, fusion, boost, no_ocr, scope, as_json)
    with open_engine(db) as engine:
        response = engine.search(
            q,
            k=k,
            filters=where,
            mode=mode,
            fusion=fusion,
            boosts=parse_boosts(boosts),
            ocr=not no_ocr,
        )
    print_response(response, as_json)


@main.command()
@click.argument("doc_id")
@DB
def delete(doc_id: str, db: Path) -> None:
    """Delete a document (by id or by the path it was ingested from)."""
    from edgerag.store.lookup import resolve_document

    with open_engine(db) as engine:
        doc_id = resolve_document(engine.store, doc_id)  # the id the erasure record hashes
        lsn = engine.delete(doc_id)
    click.echo(f"deleted {doc_id} (LSN {lsn}; proof: `edgerag erasure-report {doc_id}`)")


@main.command()
@click.argument("name")
@DB
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def entities(name: str, db: Path, as_json: bool) -> None:
    """Where an entity appears (alarm code, part number, tag...; any spelling: e107 = E-107)."""
    with open_engine(db) as engine:
        found = engine.entity(name)
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False))
        return
    click.echo(f"{found['name']} ({found['kind']}): {found['items']} item(s)")
    for doc in found["documents"]:
        click.echo(f"  {doc['source']}")
        for item in doc["items"]:
            where = " · ".join(
                str(part)
                for part in (item["section"], f"p. {item['page']}" if item["page"] else None)
                if part
            )
            text = " ".join(item["text"].split())
            click.echo(f"    [{where or item['id']}] {text[:120]}")
    if found["neighbours"]:
        names = ", ".join(n["name"] for n in found["neighbours"][:20])
        click.echo(f"  neighbours: {names}")


@main.command()
@DB
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats(db: Path, as_json: bool) -> None:
    """Show what a collection holds."""
    with open_engine(db) as engine:
        info = engine.stats()
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"collection {info['path']}: {info['documents']} documents, LSN {info['lsn']}")
    for modality, n in sorted(info["items"].items()):
        click.echo(f"  {modality}: {n} items")
    for name, space in info["spaces"].items():
        click.echo(
            f"  space {name}: {space['vectors']} vectors (store {space['store_vectors']}), "
            f"applied LSN {space['applied_lsn']} (lag {space['lag']})"
            + ("" if space["in_sync"] else "  NOT IN SYNC: run `edgerag check`")
        )
    cfg = info["config"]
    click.echo(
        f"  index {cfg['backend']}/{cfg['quantization']}, encoder {info['encoder']['id']}, "
        f"store {info['store_bytes'] / 1e6:.1f} MB"
    )
