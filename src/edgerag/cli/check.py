"""``edgerag check``: a thin shell over :func:`edgerag.check.check_collection`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgerag.check import check_collection, format_report, report_json
from edgerag.cli import main
from edgerag.cli.core import DB


@main.command()
@DB
@click.option("--repair", is_flag=True, help="Rebuild indexes, FTS rows and files that disagree.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--sample", default=256, show_default=True, help="Vectors compared per space.")
def check(db: Path, repair: bool, as_json: bool, sample: int) -> None:
    """Prove store, indexes, FTS and files agree; exit 1 naming every mismatch."""
    report = check_collection(db, repair=repair, sample=sample)
    click.echo(report_json(report) if as_json else format_report(report))
    if not report.ok:
        sys.exit(1)
