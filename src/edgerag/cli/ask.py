"""``edgerag ask``: a cited answer from a collection, streamed to the terminal."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from edgerag.answer import PHOTO_MATCH_NOTE
from edgerag.cli import main
from edgerag.cli.core import DB, open_engine
from edgerag.config import MODES
from edgerag.generation.base import Generator
from edgerag.retrieval.filters import parse_cli_filters
from edgerag.types import Query

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def make_generator(
    llm: str | None, model: str | None, api_key_env: str | None, timeout: float
) -> Generator | None:
    """The OpenAI-compatible generator the options ask for, or None (extractive)."""
    if llm is None:
        if model or api_key_env:
            raise click.UsageError("--model/--api-key-env need --llm URL")
        return None
    if not model:
        raise click.UsageError("--llm needs --model NAME (the model the endpoint serves)")
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise click.UsageError(f"--api-key-env: environment variable {api_key_env} is not set")
    from edgerag.generation.openai_compat import OpenAICompatGenerator

    return OpenAICompatGenerator(llm, model, api_key=api_key, timeout=timeout)


def _where(source: dict[str, Any]) -> str:
    where = Path(source["source"]).name or source["source"]
    if source.get("page"):
        where += f" p.{source['page']}"
    if source.get("t_start") is not None:
        end = source.get("t_end") if source.get("t_end") is not None else source["t_start"]
        where += f" {source['t_start']:.1f}–{end:.1f}s"
    return where


def _print_sources(sources: list[dict[str, Any]], cited: set[int]) -> None:
    if not sources:
        return
    click.echo("\nSources:")
    for n, source in enumerate(sources, start=1):
        mark = "*" if n in cited else " "
        snippet = " ".join(source["text"].split())
        snippet = snippet[:110] + ("…" if len(snippet) > 110 else "")
        click.echo(f" {mark}[{n}] {_where(source)} [{source['modality']}]  {snippet}")


def _stream_to_terminal(events: Any, wanted_llm: bool) -> None:
    sources: list[dict[str, Any]] = []
    for event in events:
        if event["type"] == "sources":
            sources = event["sources"]
            if event.get("heard"):
                click.echo(f"heard: {event['heard']}", err=True)
        elif event["type"] == "token":
            click.echo(event["text"], nl=False)
            sys.stdout.flush()
        elif event["type"] == "done":
            click.echo()
            if event.get("matched_by") == "photo":
                click.echo(PHOTO_MATCH_NOTE, err=True)
            _print_sources(sources, {c["n"] for c in event["citations"]})
            timings = ", ".join(f"{k} {v:.1f}" for k, v in event["timings_ms"].items())
            click.echo(f"\n{event['generator']}; timings (ms): {timings}", err=True)
            if event["partial"]:
                why = "the LLM failed, answered extractively" if wanted_llm else "a source failed"
                click.echo(f"warning: partial answer ({why})", err=True)


@main.command()
@click.argument("query", required=False)
@DB
@click.option("-k", "k", default=5, show_default=True, help="Sources given to the answerer.")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    help="KEY=VALUE filter (repeat to AND; "
    "repeat a key for OR): modality, source (glob), tags, page, doc_id, any metadata.",
)
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("--image", type=FILE, help="A photo as (part of) the question.")
@click.option("--audio", type=FILE, help="A voice clip as (part of) the question.")
@click.option(
    "--llm",
    metavar="URL",
    help="OpenAI-compatible endpoint (llama.cpp server, "
    "Ollama, vLLM, OpenAI); default: the offline extractive answerer.",
)
@click.option("--model", metavar="NAME", help="Model name for --llm.")
@click.option("--api-key-env", metavar="VAR", help="Environment variable holding the API key.")
@click.option("--timeout", default=60.0, show_default=True, help="LLM timeout in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as one JSON object.")
def ask(
    query: str | None,
    db: Path,
    k: int,
    filters: tuple[str, ...],
    mode: str,
    image: Path | None,
    audio: Path | None,
    llm: str | None,
    model: str | None,
    api_key_env: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Answer QUERY from a collection, citing the sources as [n]."""
    if not (query or "").strip() and image is None and audio is None:
        raise click.UsageError("give a QUERY, --image or --audio")
    generator = make_generator(llm, model, api_key_env, timeout)
    q = Query(
        text=query or None, image=str(image) if image else None, audio=str(audio) if audio else None
    )
    parsed = parse_cli_filters(list(filters))
    try:
        with open_engine(db) as engine:
            if as_json:
                answer = engine.ask(q, k=k, filters=parsed, mode=mode, generator=generator)
                click.echo(json.dumps(answer.to_dict()))
            else:
                events = engine.ask_stream(q, k=k, filters=parsed, mode=mode, generator=generator)
                _stream_to_terminal(events, wanted_llm=generator is not None)
    finally:
        if generator is not None:
            generator.close()
