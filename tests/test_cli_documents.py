"""`edgerag documents`, delete by source name, and ingest progress — run as a user runs them."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

EDGERAG = shutil.which("edgerag", path=str(Path(sys.executable).parent)) or "edgerag"


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([EDGERAG, *args], capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def kb(tmp_path: Path, docs: Path) -> Path:
    """The conftest docs plus a second `alarms.txt` in another folder (an ambiguous name)."""
    other = tmp_path / "site-b"
    other.mkdir()
    (other / "alarms.txt").write_text("Alarm E-220 means the cooling fan stalled.\n")
    path = tmp_path / "kb"
    run("ingest", str(docs), str(other), "--db", str(path), "--encoder", "hash")
    return path


def test_documents_json_lists_every_document(kb: Path, docs: Path) -> None:
    rows = json.loads(run("documents", "--db", str(kb), "--json").stdout)
    assert len(rows) == 4
    assert {"id", "source", "modality", "items", "ingested_at"} <= set(rows[0])
    by_name = {Path(r["source"]).name + str(Path(r["source"]).parent.name): r for r in rows}
    pump = by_name["pump.mddocs"]
    assert pump["id"] == str((docs / "pump.md").resolve())
    assert pump["modality"] == "text" and pump["items"] >= 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", pump["ingested_at"])


def test_documents_table(kb: Path) -> None:
    out = run("documents", "--db", str(kb)).stdout
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["SOURCE", "MODALITY", "ITEMS"]
    assert lines[-1] == "4 documents"
    assert any("grease.html" in line and " text " in line for line in lines)


def test_delete_by_source_name_and_ambiguity(kb: Path) -> None:
    # the file name alone: unique for pump.md
    out = run("delete", "pump.md", "--db", str(kb)).stdout
    assert "deleted" in out
    sources = [r["source"] for r in json.loads(run("documents", "--db", str(kb), "--json").stdout)]
    assert not any(s.endswith("pump.md") for s in sources) and len(sources) == 3

    # alarms.txt is in two folders: refused, both candidates listed, nothing deleted
    proc = run("delete", "alarms.txt", "--db", str(kb), ok=False)
    assert proc.returncode == 2
    assert "matches 2 documents" in proc.stderr
    assert proc.stderr.count("alarms.txt") >= 3  # the name + both candidates
    assert len(json.loads(run("documents", "--db", str(kb), "--json").stdout)) == 3

    # the full source shown by `documents` picks one
    site_b = next(s for s in sources if "site-b" in s)
    run("delete", site_b, "--db", str(kb))
    left = [r["source"] for r in json.loads(run("documents", "--db", str(kb), "--json").stdout)]
    assert site_b not in left and len(left) == 2

    missing = run("delete", "nothing.txt", "--db", str(kb), ok=False)
    assert missing.returncode == 1 and "nothing.txt" in missing.stderr


def test_ingest_piped_prints_one_summary_line(tmp_path: Path, docs: Path) -> None:
    proc = run("ingest", str(docs), "--db", str(tmp_path / "kb"), "--encoder", "hash")
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    assert re.match(r"3 added, 0 unchanged, 0 failed; \d+ items; LSN 3; [\d.]+ s \(", lines[0])


def test_ingest_on_a_terminal_shows_total_rate_eta(tmp_path: Path, docs: Path) -> None:
    leader, follower = pty.openpty()
    # a real terminal has a size; a fresh pty reports 0x0 columns
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.run(
        [EDGERAG, "ingest", str(docs), "--db", str(tmp_path / "kb"), "--encoder", "hash"],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
        timeout=300,
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert proc.returncode == 0
    text = screen.decode(errors="replace")
    # tqdm's bar: "ingest: 100%|██| 3/3 [00:00<00:00, 12.3file/s, …]" — total, ETA, rate
    assert "3/3" in text, text
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", text), text
    assert re.search(r"[\d.]+(file/s|s/file)", text), text
