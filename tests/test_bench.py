"""edgerag bench: statistics, the PASS/FAIL gate, and a real (tiny) run through the whole path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgerag import Engine
from edgerag.bench.runner import BenchOptions, bench_db, bench_synthetic, markdown_table
from edgerag.bench.stats import Latency, percentile, recall_at_k, verdict
from edgerag.cli import main
from edgerag.errors import ConfigError, NotFoundError

TINY = BenchOptions(
    queries=40, k=5, concurrency=(1, 2), gate_concurrency=2, warmup=4, ef_sweep=(16, 64)
)


def test_percentiles_of_1_to_100() -> None:
    lat = Latency.of(np.arange(1, 101))
    assert (lat.n, lat.p50, lat.p95, lat.p99, lat.max, lat.mean) == (
        100,
        50.5,
        pytest.approx(95.05),
        pytest.approx(99.01),
        100.0,
        50.5,
    )


def test_the_benchmark_scripts_percentile_is_latencys() -> None:
    """One definition for every script's p50/p95/p99 (three used to coexist)."""
    lat = Latency.of(np.arange(1, 101))
    values = list(range(100, 0, -1))  # order does not matter
    assert (percentile(values, 50), percentile(values, 95)) == (lat.p50, lat.p95)
    assert percentile([7.0], 99) == 7.0 and np.isnan(percentile([], 50))


def test_percentiles_single_sample_and_bad_input() -> None:
    lat = Latency.of([3.0])
    assert lat.p50 == lat.p95 == lat.p99 == lat.max == 3.0
    with pytest.raises(ValueError, match="no latency samples"):
        Latency.of([])
    with pytest.raises(ValueError, match="finite"):
        Latency.of([1.0, float("nan")])


def test_recall_at_k() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, 1], [5, -1, -1, -1]])
    assert recall_at_k(found, truth, k=4) == pytest.approx(4 / 8)
    assert recall_at_k(found, truth, k=2) == pytest.approx(1 / 4)  # {1,2}∩{4,3}, {5,6}∩{5,-1}
    with pytest.raises(ValueError):
        recall_at_k(found[:1], truth, k=2)


def test_verdict_line() -> None:
    ok = verdict(12.345, 50, concurrency=10, queries=1000, k=5)
    assert ok.passed
    assert ok.line == (
        "PASS: P95 12.35 ms <= budget 50 ms at concurrency 10 (1000 queries, top-5 with payload)"
    )
    bad = verdict(50.01, 50, 10, 1000, 5)
    assert not bad.passed and bad.line.startswith("FAIL: P95 50.01 ms > budget 50 ms")
    assert verdict(50.0, 50, 10, 1000, 5).passed  # the budget itself passes
    with pytest.raises(ValueError):
        verdict(1.0, 0, 10, 1000, 5)


def test_options_validate() -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        BenchOptions(concurrency=(0,))
    assert BenchOptions(concurrency=(1, 32), gate_concurrency=10).levels == (1, 10, 32)


def test_synthetic_run_measures_the_whole_path() -> None:
    report = bench_synthetic(
        400, 16, TINY, quantizations=("f32",), backend="flat", payload_chars=80
    )
    (row,) = report["targets"]
    assert row["index"] == "flat/f32" and row["vectors"] == 400
    assert row["recall@10"] == 1.0  # flat f32 is exact
    assert [lv["concurrency"] for lv in row["levels"]] == [1, 2]
    for lv in row["levels"]:
        assert lv["min_hits"] == 5  # every query came back with 5 hydrated payload rows
        assert lv["qps"] > 0
        e2e = lv["e2e"]
        assert 0 < e2e["p50"] <= e2e["p95"] <= e2e["p99"] <= e2e["max"]
        assert lv["ann"]["mean"] + lv["hydrate"]["mean"] <= e2e["mean"] * 1.01
    assert row["disk_B_per_vec"] >= 16 * 4  # at least the f32 originals
    assert row["rss_B_per_vec"] is not None and row["anon_B_per_vec"] is not None
    assert [s["ef"] for s in row["sweep"]] == [16, 64]
    # the one-thread stage means `edgerag plan` calibrates on
    one = row["single_thread"]
    assert one["ann_ms"] > 0 and one["rescore_ms"] >= 0 and one["descent_ms"] > 0
    assert row["verdict"]["passed"] == (row["levels"][1]["e2e"]["p95"] <= 50)
    assert "| flat/f32 | 2 |" in markdown_table(report)


def test_bench_db_uses_stored_vectors(tmp_path: Path, docs: Path, disk_config) -> None:
    db = tmp_path / "kb"
    with Engine.open(db, disk_config) as engine:
        engine.ingest([docs])
    report = bench_db(
        db, BenchOptions(queries=20, concurrency=(1,), gate_concurrency=1, warmup=2, ef_sweep=())
    )
    (row,) = report["targets"]
    assert row["index"] == "faiss/int8" and row["vectors"] == 3
    assert row["recall@10"] == 1.0  # 3 vectors: every one is found
    assert row["levels"][0]["min_hits"] == 3
    assert report["collection"]["encoder"] == "hash"
    with Engine.open(db) as engine:  # the collection is intact and still searchable
        assert engine.search("pump seal", k=1).hits


def test_bench_db_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no edgerag collection"):
        bench_db(tmp_path / "nope", TINY)


def test_cli_pass_and_fail_exit_codes(tmp_path: Path) -> None:
    args = [
        "bench",
        "--synthetic",
        "300",
        "--dim",
        "16",
        "--backend",
        "flat",
        "--quantization",
        "f32",
        "--queries",
        "30",
        "--concurrency",
        "1,2",
        "--gate-concurrency",
        "2",
        "--ef",
        "none",
        "--payload-chars",
        "50",
    ]
    runner = CliRunner()
    ok = runner.invoke(main, [*args, "--p95-ms", "10000", "--plot", str(tmp_path / "b.png")])
    assert ok.exit_code == 0, ok.output
    assert "PASS: P95" in ok.output and "| flat/f32 | 2 |" in ok.output
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = runner.invoke(main, [*args, "--p95-ms", "0.000001", "--json"])
    assert bad.exit_code == 1
    assert "FAIL: P95" in bad.output
    report = json.loads(bad.output[: bad.output.rindex("}") + 1])
    assert report["passed"] is False


def test_cli_bad_input() -> None:
    runner = CliRunner()
    both = runner.invoke(main, ["bench", "--synthetic", "10", "--db", "x"])
    assert both.exit_code == 2 and "exactly one of --db DIR or --synthetic N" in both.output
    conc = runner.invoke(main, ["bench", "--synthetic", "10", "--concurrency", "1,x"])
    assert conc.exit_code == 2 and "--concurrency" in conc.output
    quant = runner.invoke(
        main, ["bench", "--synthetic", "10", "--dim", "8", "--quantization", "int4"]
    )
    assert quant.exit_code == 2 and "unknown quantization 'int4'" in quant.output
