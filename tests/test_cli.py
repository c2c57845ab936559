"""The CLI contract, run as a user runs it: the installed `edgerag` command in a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EDGERAG = shutil.which("edgerag", path=str(Path(sys.executable).parent)) or "edgerag"


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([EDGERAG, *args], capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def db(tmp_path, docs) -> Path:
    path = tmp_path / "kb"
    run(
        "ingest",
        str(docs),
        "--db",
        str(path),
        "--encoder",
        "hash",
        "--meta",
        "site=plant-3",
        "--meta",
        "tags=pump,manual",
    )
    return path


def test_search_json_contract(db):
    out = json.loads(run("search", "alarm E-107", "--db", str(db), "--json", "-k", "2").stdout)
    assert set(out) >= {"hits", "timings_ms"}
    hit = out["hits"][0]
    assert {"id", "doc_id", "source", "modality", "score", "text"} <= set(hit)
    assert hit["source"].endswith("alarms.txt") and hit["metadata"]["site"] == "plant-3"
    assert out["timings_ms"]["total"] > 0


def test_search_text_output_and_filters(db):
    out = run("search", "grease", "--db", str(db), "--filter", "tags=pump", "--mode", "bm25").stdout
    assert "grease.html" in out and "timings (ms)" in out
    none = run("search", "grease", "--db", str(db), "--filter", "site=elsewhere").stdout
    assert "no results" in none


def test_reingest_is_noop_and_stats(db, docs):
    out = run(
        "ingest", str(docs), "--db", str(db), "--meta", "site=plant-3", "--meta", "tags=pump,manual"
    ).stdout
    assert "0 added, 3 unchanged" in out
    stats = json.loads(run("stats", "--db", str(db), "--json").stdout)
    assert stats["documents"] == 3 and stats["spaces"]["text"]["lag"] == 0


def test_delete(db, docs):
    doc = str((docs / "pump.md").resolve())
    assert "deleted" in run("delete", doc, "--db", str(db)).stdout
    proc = run("delete", doc, "--db", str(db), ok=False)
    assert proc.returncode != 0 and "not found" in proc.stderr


def test_bad_files_one_clear_line_each_and_nonzero_exit(db, tmp_path):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    good = tmp_path / "good.txt"
    good.write_text("Vibration above 7 mm/s needs a bearing check.")
    proc = run("ingest", str(bad), str(good), "--db", str(db), ok=False)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bad.pdf" in errors[0]
    assert "1 added" in proc.stdout  # the good file still landed
    assert "Vibration" in run("search", "vibration bearing", "--db", str(db)).stdout


def test_usage_errors(tmp_path, db):
    proc = run("search", "x", "--db", str(tmp_path / "nothing"), ok=False)
    assert proc.returncode != 0 and "no edgerag collection" in proc.stderr
    proc = run("search", "x", "--db", str(db), "--filter", "novalue", ok=False)
    assert proc.returncode == 2 and "KEY=VALUE" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_default_minilm_pipeline_end_to_end(tmp_path, docs):
    """The real default encoder (MiniLM int8 ONNX) answers a paraphrase BM25 alone can't."""
    path = tmp_path / "real"
    run("ingest", str(docs), "--db", str(path))
    out = json.loads(
        run(
            "search",
            "how much lubricant and how often",
            "--db",
            str(path),
            "--json",
            "--mode",
            "dense",
            "-k",
            "1",
        ).stdout
    )
    assert out["hits"][0]["source"].endswith("grease.html")
