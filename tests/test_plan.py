"""edgerag plan: the sizing and cost arithmetic (known inputs → known outputs) and the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgerag.bench.plan import (
    Calibration,
    PlanInputs,
    PrecisionCal,
    Prices,
    Range,
    calibration_from_report,
    costs,
    mb_for,
    parse_range,
    plan,
    predict_index_ms,
    render,
    size,
)
from edgerag.cli import main
from edgerag.errors import ConfigError

CAL = Calibration(
    n=10_000,
    dim=100,
    cores=2,
    cpu="test",
    precisions={
        "int8": PrecisionCal(
            rss_B_per_vec=300,
            disk_B_per_vec=1000,
            store_B_per_item=1500,
            ann_ms=1.0,
            rescore_ms=0.5,
            hydrate_ms=0.5,
            e2e_mean_ms=2.0,
            e2e_p95_ms=4.0,
            recall=0.97,
        ),
        "f32": PrecisionCal(
            rss_B_per_vec=600,
            disk_B_per_vec=1100,
            store_B_per_item=1500,
            ann_ms=1.0,
            rescore_ms=0.0,
            hydrate_ms=0.5,
            e2e_mean_ms=1.5,
            e2e_p95_ms=3.0,
            recall=0.99,
        ),
    },
)


def test_parse_range() -> None:
    assert parse_range("3") == Range(3, 3)
    assert parse_range("0.08-0.15") == Range(0.08, 0.15)
    assert parse_range(2.5) == Range(2.5, 2.5)
    for bad in ("x", "5-3", "-1"):
        with pytest.raises(ConfigError):
            parse_range(bad, "--price")


def test_mb_per_query_from_modalities() -> None:
    assert mb_for(("text",)) == Range(0.002, 0.002)
    assert mb_for(("image", "audio")) == Range(26, 51)
    with pytest.raises(ConfigError, match="smell"):
        mb_for(("smell",))


def test_brief_cost_figures() -> None:
    """The brief's defaults at 10k queries/day reproduce its monthly ranges."""
    c = costs(Prices())
    assert c.embed == pytest.approx((900, 2400))
    assert c.egress == pytest.approx((600, 2250))
    assert c.vectordb == (800, 3000)
    assert c.cloud_total == pytest.approx((2300, 7650))
    assert c.edge_hw == pytest.approx((300, 600))
    assert c.edge_total == pytest.approx((450, 900))
    # edge $450 / (30 × $0.005) and $900 / (30 × $0.0155)
    assert c.breakeven_qpd_api_only == pytest.approx((900 / 0.465, 3000))
    assert c.breakeven_qpd_with_db == (0, 0)  # the managed DB alone costs more than the edge box


def test_costs_scale_with_volume_and_free_api() -> None:
    c = costs(Prices(queries_per_day=0))
    assert c.embed == (0, 0) and c.egress == (0, 0)
    free = costs(Prices(embed_usd_per_1k=Range(0, 0), egress_usd_per_gb=Range(0, 0)))
    assert free.breakeven_qpd_api_only == (math.inf, math.inf)


def test_sizing_arithmetic() -> None:
    s = size(PlanInputs(vectors=1_000_000, dim=200, qps=100), CAL, "int8")
    assert s.mb_per_million == 400  # 200 code bytes + 200 measured overhead
    assert s.index_ram_gb == pytest.approx(0.4)
    assert s.ram_gb == 2  # (0.4 + 0.1 × 0.8) × 1.3 + 0.5 = 1.124 → 2
    # mean: ann 1 × ln(1e6)/ln(1e4) × 2 + rescore 0.5 × 2 + hydrate 0.5 = 4.5 ms = 2.25 × 2 ms
    assert s.p95_single_ms == pytest.approx(9.0)
    assert s.cores == 2  # 100 QPS × 4.5 ms = 0.45 busy cores / 0.5 → 1 → minimum 2
    assert s.utilisation == pytest.approx(0.225)
    assert s.p95_load_ms == pytest.approx(9.0 / 0.775)
    # store 1500 − 400 + 800 = 1900; index (1000 − 500) + 5 × 200 = 1500, twice
    assert s.disk_gb == pytest.approx(4.9)
    assert s.passed and s.recall_cal == 0.97


def test_sizing_cores_and_budget() -> None:
    s = size(PlanInputs(vectors=10_000, dim=100, qps=1000, p95_budget_ms=5), CAL, "int8")
    # same size as calibration: 2 ms service; 1000 QPS → 2 busy cores / 0.5 → 4 cores
    assert s.cores == 4 and s.utilisation == pytest.approx(0.5)
    assert s.p95_load_ms == pytest.approx(8.0) and not s.passed
    with pytest.raises(ConfigError, match="binary"):
        size(PlanInputs(vectors=10, dim=100), CAL, "binary")
    with pytest.raises(ConfigError):
        PlanInputs(vectors=0, dim=100)


def test_calibration_from_report_and_render() -> None:
    lat = {"mean": 1.0, "p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0, "n": 10}
    report = {
        "collection": {"vectors": 1000, "dim": 64, "store_bytes": 1_000_000},
        "options": {"recall_k": 10},
        "machine": {"cores": 2, "cpu": "x"},
        "targets": [
            {
                "index": "faiss/int8",
                "rss_B_per_vec": 500.0,
                "disk_B_per_vec": 900.0,
                "recall@10": 0.98,
                "levels": [
                    {"concurrency": 1, "e2e": lat, "ann": lat, "rescore": lat, "hydrate": lat}
                ],
            }
        ],
    }
    cal = calibration_from_report(report)
    assert cal.precisions["int8"].store_B_per_item == 1000
    assert cal.precisions["int8"].ann_ms == 1.0  # an older report: the c=1 level's stages
    report["targets"][0]["single_thread"] = {"ann_ms": 0.4, "rescore_ms": 0.1, "descent_ms": 0.05}
    one_thread = calibration_from_report(report).precisions["int8"]
    assert (one_thread.ann_ms, one_thread.rescore_ms, one_thread.e2e_p95_ms) == (0.4, 0.1, 2.0)
    assert one_thread.descent_ms == 0.05
    assert Calibration.from_dict(json.loads(cal.to_json())) == cal
    text = render(plan(PlanInputs(vectors=10**6, dim=64), cal, Prices(), ("int8",)))
    assert "| int8 |" in text and "PASS" in text and "$2,300–7,650" in text


def test_latency_model_scales_only_the_descent_with_ln_n() -> None:
    measured = replace(CAL.precisions["int8"], descent_ms=0.2)
    cal = replace(CAL, precisions={"int8": measured})
    # at the calibration size and dim: the measured stages as they are
    assert predict_index_ms(cal, "int8", CAL.n, CAL.dim) == pytest.approx(1.5)
    # 10,000 → 10^8: ln N doubles, so does the descent only: 0.8 + 0.4 + 0.5 rescoring
    assert predict_index_ms(cal, "int8", 10**8, CAL.dim) == pytest.approx(1.7)
    assert predict_index_ms(cal, "int8", 10**8, 2 * CAL.dim) == pytest.approx(3.4)  # ∝ D
    # a calibration from before the descent was measured: all of ANN grows with ln N
    assert predict_index_ms(CAL, "int8", 10**8, CAL.dim) == pytest.approx(2.5)


def test_cli_plan_with_stored_calibration(tmp_path: Path) -> None:
    cal_file = tmp_path / "cal.json"
    cal_file.write_text(CAL.to_json())
    res = CliRunner().invoke(
        main,
        [
            "plan",
            "--vectors",
            "1000000",
            "--dim",
            "200",
            "--qps",
            "100",
            "--calibration",
            str(cal_file),
            "--precision",
            "f32,int8",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert [s["precision"] for s in out["sizing"]] == ["f32", "int8"]
    assert out["sizing"][1]["ram_gb"] == 2
    assert out["costs"]["embed"] == pytest.approx([900, 2400])
    text = CliRunner().invoke(
        main,
        [
            "plan",
            "--vectors",
            "1000000",
            "--dim",
            "200",
            "--calibration",
            str(cal_file),
            "--embed-usd-per-1k",
            "1",
            "--modalities",
            "text",
        ],
    )
    assert text.exit_code == 0 and "$300 |" in text.output  # 300k queries × $1/1k


def test_cli_plan_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    runner = CliRunner()
    res = runner.invoke(main, ["plan", "--vectors", "10", "--dim", "8", "--calibration", str(bad)])
    assert res.exit_code == 2 and "calibration data is malformed" in res.output
    res = runner.invoke(
        main,
        [
            "plan",
            "--vectors",
            "10",
            "--dim",
            "8",
            "--egress-usd-per-gb",
            "cheap",
            "--calibration",
            str(bad),
        ],
    )
    assert res.exit_code == 2 and "--egress-usd-per-gb" in res.output


def test_calibration_is_measured_once_then_read_from_the_cache(tmp_path, monkeypatch):
    import edgerag.bench.plan as planlib

    first, path, cached = planlib.cached_calibration(16, n=600, cache_dir=tmp_path)
    assert not cached and path.parent == tmp_path and path.exists()
    assert set(first.precisions) == set(planlib.PRECISIONS) and first.n == 600

    def must_not_run(*_a, **_k):
        raise AssertionError("recalibrated although a cached calibration exists")

    monkeypatch.setattr(planlib, "calibrate", must_not_run)
    again, again_path, cached = planlib.cached_calibration(16, n=600, cache_dir=tmp_path)
    assert cached and again_path == path and again == first
    # another size or dim is another key; a refresh measures again
    assert planlib.calibration_cache_path(16, 700, tmp_path) != path
    assert planlib.calibration_cache_path(32, 600, tmp_path) != path
    calls = []
    monkeypatch.setattr(planlib, "calibrate", lambda dim, n: calls.append((dim, n)) or CAL)
    fresh, _, cached = planlib.cached_calibration(16, n=600, cache_dir=tmp_path, refresh=True)
    assert calls == [(16, 600)] and not cached and fresh == CAL
    assert Calibration.load(path) == CAL  # the refresh replaced the cached file
    # a damaged cache file is measured over, not trusted
    path.write_text("{not json")
    healed, _, cached = planlib.cached_calibration(16, n=600, cache_dir=tmp_path)
    assert not cached and healed == CAL and len(calls) == 2


def test_cli_plan_uses_the_calibration_cache(tmp_path, monkeypatch):
    import edgerag.bench.plan as planlib

    monkeypatch.setenv("EDGERAG_CACHE_DIR", str(tmp_path))
    path = planlib.calibration_cache_path(200, 20_000)
    assert path.parent == tmp_path
    path.write_text(CAL.to_json())
    monkeypatch.setattr(planlib, "calibrate", lambda *a, **k: pytest.fail("recalibrated"))
    res = CliRunner().invoke(main, ["plan", "--vectors", "1000000", "--dim", "200", "--json"])
    assert res.exit_code == 0, res.output
    assert f"calibration read from {path}" in res.output
    assert json.loads(res.output[res.output.index("{") :])["calibration"]["n"] == CAL.n
