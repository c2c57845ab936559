"""``edgerag bench`` (latency under load, a deployment gate) and ``edgerag plan`` (sizing, cost)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from edgerag.cli import main
from edgerag.cli.core import KEY_FILE

logger = logging.getLogger(__name__)


def _ints(text: str, name: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none", "0"):
        return ()
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a comma-separated list of integers", param_hint=name
        ) from None
    if any(v < 1 for v in values):
        raise click.BadParameter(f"{text!r}: every value must be >= 1", param_hint=name)
    return values


def _words(text: str | None) -> tuple[str, ...]:
    return tuple(w.strip() for w in (text or "").split(",") if w.strip())


@main.command()
@KEY_FILE
@click.option(
    "--db",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Bench this collection (its stored vectors, perturbed, are the queries).",
)
@click.option(
    "--synthetic",
    "n",
    type=int,
    default=None,
    help="Bench a temporary collection of N clustered synthetic vectors.",
)
@click.option("--dim", type=int, default=512, show_default=True, help="Dimension (--synthetic).")
@click.option(
    "--concurrency",
    default="1,10,32",
    show_default=True,
    help="Concurrent clients per level (closed loop), comma-separated.",
)
@click.option(
    "--quantization",
    default=None,
    help="Index precision(s) to compare, e.g. f32,int8,binary (default: the "
    "collection's, or int8). Others are built from the stored vectors in a temp dir.",
)
@click.option(
    "--backend",
    type=click.Choice(["flat", "faiss", "usearch"]),
    default="faiss",
    show_default=True,
    help="Index engine (--synthetic).",
)
@click.option(
    "--queries", type=int, default=1000, show_default=True, help="Timed queries per level."
)
@click.option(
    "-k", "k", type=int, default=5, show_default=True, help="Results per query, with payload."
)
@click.option(
    "--p95-ms",
    type=float,
    default=50.0,
    show_default=True,
    help="P95 budget of the PASS/FAIL gate.",
)
@click.option(
    "--gate-concurrency",
    type=int,
    default=10,
    show_default=True,
    help="Concurrency the gate judges (always run).",
)
@click.option(
    "--ef",
    "ef",
    default="32,64,128,256",
    show_default=True,
    help="ef_search values for the recall-vs-latency sweep ('none' to skip).",
)
@click.option(
    "--payload-chars",
    type=int,
    default=600,
    show_default=True,
    help="Text per synthetic item (what hydration reads).",
)
@click.option("--space", default="text", show_default=True, help="Vector space (--db).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a PNG: latency vs concurrency and recall vs latency.",
)
def bench(
    db: Path | None,
    n: int | None,
    dim: int,
    concurrency: str,
    quantization: str | None,
    backend: str,
    queries: int,
    k: int,
    p95_ms: float,
    gate_concurrency: int,
    ef: str,
    payload_chars: int,
    space: str,
    as_json: bool,
    plot: Path | None,
) -> None:
    """Latency under concurrent load (end to end and per stage), recall, QPS, memory.

    Exits 1 when the P95 at --gate-concurrency is over --p95-ms, so it can gate a deployment.
    """
    from edgerag.bench.runner import (
        BenchOptions,
        bench_db,
        bench_synthetic,
        markdown_table,
        sweep_table,
        verdict_lines,
    )

    if (db is None) == (n is None):
        raise click.UsageError("give exactly one of --db DIR or --synthetic N")
    options = BenchOptions(
        queries=queries,
        k=k,
        concurrency=_ints(concurrency, "--concurrency") or (1,),
        gate_concurrency=gate_concurrency,
        p95_budget_ms=p95_ms,
        ef_sweep=_ints(ef, "--ef"),
    )
    quants = _words(quantization)
    if db is not None:
        report = bench_db(db, options, quants, space_name=space)
    else:
        assert n is not None
        report = bench_synthetic(
            n, dim, options, quants, backend=backend, payload_chars=payload_chars
        )
    if plot is not None:
        from edgerag.bench.plot import plot_report

        plot_report(report, plot)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        src, m = report["collection"], report["machine"]
        click.echo(
            f"collection: {src['source']}, {src['vectors']:,} × {src['dim']}; machine: "
            f"{m['cores']} cores ({m['cpu']}), load avg {m['loadavg_start'][0]} → "
            f"{m['loadavg_end'][0]}; process RSS {m['process_rss_MB']} MB"
        )
        click.echo("")
        click.echo(markdown_table(report))
        if options.ef_sweep:
            click.echo("")
            click.echo(sweep_table(report))
        click.echo("")
        if plot is not None:
            click.echo(f"plot: {plot}")
    for line in verdict_lines(report):
        click.echo(line, err=as_json)
    if not report["passed"]:
        sys.exit(1)


@main.command()
@click.option("--vectors", type=int, required=True, help="Vectors to serve (all spaces).")
@click.option("--dim", type=int, required=True, help="Vector dimension.")
@click.option(
    "--modalities",
    default="text,image",
    show_default=True,
    help="What a query carries (sets the upload per query for the cloud egress).",
)
@click.option("--qps", type=float, default=10.0, show_default=True, help="Peak queries/second.")
@click.option("--p95-ms", type=float, default=50.0, show_default=True, help="P95 budget.")
@click.option(
    "--queries-per-day",
    type=float,
    default=10_000,
    show_default=True,
    help="Per site, for the monthly cost.",
)
@click.option(
    "--embed-usd-per-1k",
    default="3-8",
    show_default=True,
    help="Cloud embedding API per 1k queries (value or LOW-HIGH).",
)
@click.option(
    "--egress-usd-per-gb", default="0.08-0.15", show_default=True, help="Cloud egress per GB."
)
@click.option(
    "--mb-per-query",
    default=None,
    help="Upload per query in MB (default from --modalities: image 25-50, audio 1, text 0.002).",
)
@click.option(
    "--vectordb-usd-month",
    default="800-3000",
    show_default=True,
    help="Managed vector DB per month.",
)
@click.option(
    "--edge-hw-usd",
    default="10800-21600",
    show_default=True,
    help="Edge box price (put your quote here).",
)
@click.option("--amortize-months", type=float, default=36, show_default=True)
@click.option(
    "--edge-ops-usd-month",
    default="150-300",
    show_default=True,
    help="Operating one edge node per month.",
)
@click.option(
    "--base-ram-gb",
    type=float,
    default=0.5,
    show_default=True,
    help="Process, encoder model and runtime besides the index.",
)
@click.option(
    "--originals-cached",
    type=float,
    default=0.1,
    show_default=True,
    help="Share of the f32 originals kept in page cache for rescoring (0-1).",
)
@click.option("--precision", "precisions", default="f32,int8,binary", show_default=True)
@click.option(
    "--calibration",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Calibration JSON: read if it exists, else measured here and written to it.",
)
@click.option(
    "--calibrate-n",
    type=int,
    default=20_000,
    show_default=True,
    help="Vectors in the calibration run.",
)
@click.option(
    "--recalibrate",
    is_flag=True,
    help="Measure again instead of using the cached calibration (cached per machine and "
    "version under $EDGERAG_CACHE_DIR or ~/.cache/edgerag).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(
    vectors: int,
    dim: int,
    modalities: str,
    qps: float,
    p95_ms: float,
    queries_per_day: float,
    embed_usd_per_1k: str,
    egress_usd_per_gb: str,
    mb_per_query: str | None,
    vectordb_usd_month: str,
    edge_hw_usd: str,
    amortize_months: float,
    edge_ops_usd_month: str,
    base_ram_gb: float,
    originals_cached: float,
    precisions: str,
    calibration: Path | None,
    calibrate_n: int,
    recalibrate: bool,
    as_json: bool,
) -> None:
    """Hardware dimensioning per precision and a monthly edge-vs-cloud cost, from measurements."""
    from edgerag.bench import plan as planlib

    inputs = planlib.PlanInputs(
        vectors=vectors,
        dim=dim,
        qps=qps,
        p95_budget_ms=p95_ms,
        base_ram_gb=base_ram_gb,
        originals_cached=originals_cached,
    )
    mb = (
        planlib.parse_range(mb_per_query, "--mb-per-query")
        if mb_per_query
        else planlib.mb_for(_words(modalities))
    )
    prices = planlib.Prices(
        queries_per_day=queries_per_day,
        embed_usd_per_1k=planlib.parse_range(embed_usd_per_1k, "--embed-usd-per-1k"),
        egress_usd_per_gb=planlib.parse_range(egress_usd_per_gb, "--egress-usd-per-gb"),
        mb_per_query=mb,
        vectordb_usd_month=planlib.parse_range(vectordb_usd_month, "--vectordb-usd-month"),
        edge_hw_usd=planlib.parse_range(edge_hw_usd, "--edge-hw-usd"),
        amortize_months=amortize_months,
        edge_ops_usd_month=planlib.parse_range(edge_ops_usd_month, "--edge-ops-usd-month"),
    )
    wanted = _words(precisions)
    bad = [p for p in wanted if p not in planlib.PRECISIONS]
    if bad:
        raise click.BadParameter(
            f"{bad[0]!r}; choose from {list(planlib.PRECISIONS)}", param_hint="--precision"
        )
    cal_dim = planlib.calibration_dim(dim)
    if calibration is not None and calibration.exists() and not recalibrate:
        cal = planlib.Calibration.load(calibration)
    elif calibration is not None:
        click.echo(f"calibrating: {calibrate_n:,} × {cal_dim} synthetic vectors …", err=True)
        cal = planlib.calibrate(cal_dim, n=calibrate_n)
        calibration.parent.mkdir(parents=True, exist_ok=True)
        calibration.write_text(cal.to_json())
    else:
        path = planlib.calibration_cache_path(cal_dim, calibrate_n)
        if recalibrate or not path.exists():
            click.echo(f"calibrating: {calibrate_n:,} × {cal_dim} synthetic vectors …", err=True)
        cal, path, cached = planlib.cached_calibration(cal_dim, calibrate_n, refresh=recalibrate)
        click.echo(f"calibration {'read from' if cached else 'cached in'} {path}", err=True)
    result = planlib.plan(inputs, cal, prices, wanted)
    click.echo(json.dumps(result, indent=1) if as_json else planlib.render(result))
