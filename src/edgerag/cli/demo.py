"""``edgerag demo``: ingest the bundled sample corpus and answer its sample questions offline."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import click

from edgerag.cli import main
from edgerag.cli.core import print_response
from edgerag.engine import Engine


def bundled_corpus() -> Path:
    return Path(str(resources.files("edgerag") / "demo_corpus"))


@main.command()
@click.option("--db", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-data"),
              show_default=True, help="Collection directory to build.")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Corpus directory (default: the bundled sample manual).")
@click.option("-k", "k", default=3, show_default=True, help="Sources shown per question.")
def demo(db: Path, corpus: Path | None, k: int) -> None:
    """Ingest the sample maintenance corpus and ask its sample questions."""
    corpus = corpus or bundled_corpus()
    questions = [
        q.strip() for q in (corpus / "questions.txt").read_text().splitlines() if q.strip()
    ]
    t0 = time.perf_counter()
    with Engine.open(db) as engine:
        report = engine.ingest(sorted(p for p in corpus.iterdir() if p.name != "questions.txt"))
        took = time.perf_counter() - t0
        click.echo(f"ingested {len(report.added)} new / {len(report.unchanged)} unchanged documents"
                   f" ({report.items} items) into {db} in {took:.1f}s")
        for source, reason in report.errors:
            click.echo(f"error: {source}: {reason}", err=True)
        for question in questions:
            click.secho(f"\nQ: {question}", bold=True)
            print_response(engine.search(question, k=k), as_json=False)
