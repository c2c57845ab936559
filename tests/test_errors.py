"""Honest errors: typos are refused with what is allowed, a missing collection is not created
behind the user's back, broken files are described in plain words, every request body follows one
rule for unknown fields, and /docs works offline."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgerag import Engine, EngineConfig, IndexConfig
from edgerag.errors import ConfigError, InputError
from edgerag.ingest.extract.reasons import av_reason, image_reason, pdf_reason, plain
from edgerag.retrieval.filters import where_clause

EDGERAG = shutil.which("edgerag", path=str(Path(sys.executable).parent)) or "edgerag"
FAST = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))
INTERNALS = re.compile(r"<bytes|<_io\.|Errno|Traceback|object at 0x|\bb'|Pdf\w*Error|\w+Error:")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGERAG, *args], capture_output=True, text=True, timeout=300)


# --- filters --------------------------------------------------------------------------------
TYPOS = [
    ({"modality": "txt"}, "modality", "text, image, audio, video"),
    ({"modality": ["text", "imgae"]}, "modality", "text, image, audio, video"),
    ({"page": "abc"}, "page", "whole number"),
    ({"page": 0}, "page", "whole number"),
    ({"source": "manuals/[ab.pdf"}, "source", "unclosed '['"),
    ({"source": "manual-[9-0].pdf"}, "source", "reversed range"),
    ({"source": ""}, "source", "empty value"),
    ({"tags": ""}, "tags", "empty value"),
    ({"site name": "x"}, "site name", "built-in keys are"),
    ({"specs..rating": 3}, "specs..rating", "dots for nested"),
    ({"site": {"eq": "plant-1"}}, "site", "not a value"),
    ({"time_from": [1, 2]}, "time_from", "takes one value"),
    ({"ingested_after": "last tuesday"}, "ingested_after", "ISO date"),
]


@pytest.mark.parametrize("filters,key,allowed", TYPOS)
def test_filter_typo_is_a_config_error_naming_key_and_allowed(filters, key, allowed):
    with pytest.raises(ConfigError) as err:
        where_clause(filters)
    assert key in str(err.value) and allowed in str(err.value)


@pytest.mark.parametrize(
    "filters",
    [
        {"modality": ["text", "image"]},
        {"page": "3"},
        {"source": "manuals/[a-c]*.pdf"},
        {"source": "manuals/[]x]*.pdf"},  # ']' first in a set is a literal
        {"source": "C:\\docs\\pump.pdf"},
        {"specs.rating": "5"},
        {"line-id": "L2"},
        {"ingested_after": "2026-01-01"},
    ],
)
def test_well_formed_filters_pass(filters):
    sql, _ = where_clause(filters)
    assert sql != "1"


def test_unknown_metadata_value_is_an_empty_result_not_an_error():
    with Engine.open(":memory:", FAST) as engine:
        engine.ingest([("a.txt", b"pump seal torque 25 Nm")], metadata={"site": "plant-1"})
        assert engine.search("pump", filters={"site": "plant-1"}).hits
        response = engine.search("pump", filters={"site": "plant-9"})
        assert response.hits == [] and response.plan == "filter allows nothing"
        with pytest.raises(ConfigError, match="modality"):
            engine.search("pump", filters={"modality": "txt"})


@pytest.fixture
def cli_db(tmp_path, docs) -> Path:
    db = tmp_path / "kb"
    proc = run("ingest", str(docs), "--db", str(db), "--encoder", "hash")
    assert proc.returncode == 0, proc.stderr
    return db


def test_cli_filter_typos_exit_2_with_the_allowed_values(cli_db):
    for flt, expected in [
        ("modality=txt", "text, image, audio, video"),
        ("page=abc", "whole number"),
        ("source=man[uals/*.pdf", "unclosed '['"),
    ]:
        proc = run("search", "pump", "--db", str(cli_db), "--filter", flt)
        assert proc.returncode == 2, (flt, proc.stdout, proc.stderr)
        assert flt.split("=")[0] in proc.stderr and expected in proc.stderr
        assert "Traceback" not in proc.stderr
    proc = run("search", "pump", "--db", str(cli_db), "--filter", "modality=text", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["hits"]


# --- a missing collection is not created ----------------------------------------------------
@pytest.mark.parametrize("command", [["search", "x"], ["ask", "x"], ["stats"], ["serve"]])
def test_commands_refuse_a_missing_collection(tmp_path, command):
    typo = tmp_path / "kbb"
    proc = run(*command, "--db", str(typo))
    assert proc.returncode != 0
    assert str(typo) in proc.stderr and "no such directory" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not typo.exists(), f"{command[0]} created {typo}"


def test_serve_create_makes_a_new_collection(tmp_path):
    httpx = pytest.importorskip("httpx")
    from test_server_process import free_port

    db, port = tmp_path / "new-kb", free_port()
    proc = subprocess.Popen(
        [EDGERAG, "serve", "--db", str(db), "--create", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline, up = time.monotonic() + 120, False
        while time.monotonic() < deadline and proc.poll() is None and not up:
            try:
                up = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                time.sleep(0.3)
        assert up, proc.stderr.read().decode() if proc.poll() is not None else "not up"
        assert (db / "store.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_require_read_keys_without_any_key_refuses_to_start(tmp_path):
    db = tmp_path / "kb"
    Engine.open(db, FAST).close()
    proc = run("serve", "--db", str(db), "--require-read-keys", "--port", "1")
    assert proc.returncode == 2, proc.stderr
    assert "--require-read-keys" in proc.stderr and "edgerag keys create" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- input errors in words ------------------------------------------------------------------
def test_reasons_strip_library_internals():
    assert plain("[Errno 1094995529] Invalid data found: 'avcodec_send_packet()'") == (
        "Invalid data found"
    )
    assert plain("cannot identify image file <_io.BytesIO object at 0x7f28023641d0>") == (
        "cannot identify image file"
    )
    assert "b'" not in plain("Invalid Elementary Object starting with b')' @2401: b'inG-63 C3'")
    av = pytest.importorskip("av")
    try:
        av.open(io.BytesIO(b"not audio at all" * 8))
    except av.error.FFmpegError as exc:
        assert av_reason(exc) == "the data is damaged or is not in a format FFmpeg reads"
    pil = pytest.importorskip("PIL.Image")
    try:
        pil.open(io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\0" * 8))
    except Exception as exc:  # noqa: BLE001
        assert image_reason(exc) == "not a recognised image format, or its header is damaged"
    pypdf = pytest.importorskip("pypdf")
    exc = pypdf.errors.PdfReadError("Invalid Elementary Object starting with b'\\x8a' @17568")
    assert pdf_reason(exc) == "an object inside it is damaged"


def _broken_inputs() -> list[tuple[str, bytes]]:
    from fuzz_support import SEED_FILES, make_mp3

    pdf = SEED_FILES["pdf"].read_bytes()
    wav = SEED_FILES["wav"].read_bytes()
    mp4 = SEED_FILES["mp4"].read_bytes()
    # A page object's header is damaged (one byte after "N 0 obj"); the file still ends in %%EOF.
    page = re.search(rb" 0 obj\s*<<\s*/Contents", pdf).start() + len(" 0 obj")
    broken_pdf = pdf[:page] + b"\x8a" + pdf[page + 1 :]
    return [
        ("header-only.png", SEED_FILES["png"].read_bytes()[:16]),
        ("garbage.jpg", b"\xff\xd8\xff" + bytes(range(256)) * 4),
        ("noise.wav", b"RIFF" + bytes(100)),
        ("random.mp3", bytes(range(256)) * 8),
        ("cut.mp3", make_mp3(SEED_FILES["wav"])[:600]),
        ("header-only.mp4", mp4[:64]),
        ("zeroed.mp4", mp4[:2000] + bytes(20000) + mp4[22000:]),
        ("broken.pdf", broken_pdf),
        ("tail.wav", wav[:44] + bytes(10)),
    ]


def test_broken_media_and_pdf_errors_are_plain_words_naming_the_file():
    pytest.importorskip("av")
    config = EngineConfig(encoder="hash", ocr=False, transcribe=False)
    with Engine.open(":memory:", config) as engine:
        for name, data in _broken_inputs():
            report = engine.ingest([(name, data)])
            assert report.added == [] and len(report.errors) == 1, (name, report.errors)
            source, reason = report.errors[0]
            line = f"{source}: {reason}"
            assert source == name and "\n" not in line
            assert not INTERNALS.search(reason), line


def test_input_error_names_file_and_reason():
    err = InputError("pump.pdf", "the file ends early (truncated)")
    assert str(err) == "pump.pdf: the file ends early (truncated)"
