"""Scratch dirs of processes killed by a signal are swept by the next process that makes one.

An in-memory collection keeps its index files in a private temp dir, removed by ``close()`` or a
finalizer; a process killed with SIGKILL runs neither, so its dir stayed in /tmp forever (the
fleet tests, whose nodes are killed, left ~28 per test run). Real processes, real SIGKILL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import FAST
from edgerag import Engine
from edgerag.crypto import scratch_dir

# Opens an in-memory engine with the hash encoder, ingests one text so its scratch dir holds
# index files, prints the dir and waits (until stdin closes or it is killed).
HOLDER = """
import sys
from edgerag import Engine, EngineConfig, IndexConfig

config = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))
engine = Engine.open(":memory:", config)
engine.ingest([("pump.md", b"# Pump seal\\n\\nReplace the seal when the pump leaks.\\n")])
print(engine._scratch, flush=True)
sys.stdin.read()
"""


def start_holder(tmp: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, f"holder exited with {proc.wait(timeout=30)}"
    return proc, Path(line)


def test_a_killed_process_in_memory_index_dir_is_swept_by_the_next_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))  # this process's scratch dirs go there too
    killed, dead_dir = start_holder(tmp)
    alive, live_dir = start_holder(tmp)
    try:
        for proc, directory in ((killed, dead_dir), (alive, live_dir)):
            assert directory.parent == tmp
            assert directory.name.startswith(f"edgerag-mem-{proc.pid}-")
            assert any(p.is_file() for p in directory.rglob("*"))
        # names that do not parse as <prefix><pid>-… are never touched
        unparsed = [tmp / "edgerag-mem-abc12345", tmp / "edgerag-mem-x1-y"]
        for directory in unparsed:
            directory.mkdir()

        killed.kill()
        killed.wait(timeout=30)
        assert dead_dir.exists()  # a process killed by a signal cannot clean up after itself

        with Engine.open(":memory:", FAST) as engine:
            engine.ingest([("alarms.txt", b"Alarm E-107 means the discharge pressure is high.\n")])
            mine = engine._scratch
            assert mine is not None and mine.parent == tmp
            assert mine.name.startswith(f"edgerag-mem-{os.getpid()}-")
            assert not dead_dir.exists()  # the dead process's dir is swept
            assert live_dir.exists() and any(p.is_file() for p in live_dir.rglob("*"))
            assert all(d.is_dir() for d in unparsed)
        assert not mine.exists()
        assert sorted(tmp.iterdir()) == sorted([live_dir, *unparsed])
    finally:
        for proc in (killed, alive):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def test_scratch_dir_keeps_a_live_pid_whatever_the_prefix(tmp_path: Path) -> None:
    """Each prefix sweeps its own naming only; a live pid's dir (this process's) is kept."""
    own = tmp_path / f"edgerag-index-{os.getpid()}-kept"
    own.mkdir()
    other = tmp_path / f"edgerag-mem-{_dead_pid()}-other-prefix"
    other.mkdir()
    made = scratch_dir("edgerag-index-", tmp_path)
    assert made.parent == tmp_path and made.name.startswith(f"edgerag-index-{os.getpid()}-")
    assert own.is_dir() and other.is_dir()
    scratch_dir("edgerag-mem-", tmp_path)
    assert not other.exists() and own.is_dir()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid
