"""kill -9 of the sink process at random points, 20 times: upstream still equals the store."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import FAST
from tests.test_upstream import assert_upstream_equals_store

from edgerag import Engine
from edgerag.upstream.base import UpstreamSpec, open_upstream
from edgerag.upstream.state import UpstreamState

pytest.importorskip("qdrant_client", reason="the qdrant extra is not installed")
EDGERAG = shutil.which("edgerag", path=str(Path(sys.executable).parent)) or "edgerag"


DOCS_PER_ROUND = 24  # enough op-log rows that a kill can land well before the round is shipped


def write_round(engine: Engine, rng: random.Random, round_no: int) -> None:
    """New documents, a changed one, a deleted one: every kind of op the sink ships."""
    pairs = [
        (
            f"r{round_no}-{i}.txt",
            f"round {round_no} doc {i} " + "pump valve seal " * rng.randint(5, 400),
        )
        for i in range(DOCS_PER_ROUND)
    ]
    engine.ingest([(name, text.encode()) for name, text in pairs])
    docs = [d["doc_id"] for d in engine.documents(limit=10_000)]
    engine.ingest([(rng.choice(docs), f"changed in round {round_no}".encode())])
    engine.delete(rng.choice([d["doc_id"] for d in engine.documents(limit=10_000)]))


def shipped(state: UpstreamState) -> int:
    return state.shipped_lsn("default")


def test_twenty_random_kills_then_upstream_equals_store(tmp_path):
    rng = random.Random(12)
    db, target = tmp_path / "kb", tmp_path / "qdrant"
    engine = Engine.open(db, FAST)
    state = UpstreamState(engine.store)
    state.add("default", UpstreamSpec("qdrant", str(target)))
    write_round(engine, rng, 0)
    sync = ["upstream", "sync", "--db", str(db), "--batch", "2", "--interval", "0.05"]
    worker = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("upstream_sink_worker.py")), *sync],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdin and worker.stdout
    kills_mid_stream = 0
    for round_no in range(1, 21):
        write_round(engine, rng, round_no)
        before = shipped(state)
        # Kill at a random point in the first half of the round's rows: progress-based, not
        # time-based, so a fast machine that ships a round in milliseconds still gets killed
        # mid-stream (a time-based kill on CI landed after the round was done 11 times of 20).
        kill_at = before + rng.randint(1, max(1, (engine.store.last_lsn() - before) // 2))
        worker.stdin.write("run\n")
        worker.stdin.flush()
        pid = int(worker.stdout.readline().split()[1])  # a fresh sink process
        deadline = time.monotonic() + 60
        while shipped(state) < kill_at and time.monotonic() < deadline:
            time.sleep(0.002)
        os.kill(pid, signal.SIGKILL)
        status = int(worker.stdout.readline().split()[1])
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        after = shipped(state)
        assert after > before  # every round made progress before its kill
        kills_mid_stream += after < engine.store.last_lsn()
    assert kills_mid_stream >= 10  # most kills hit a sink with ops still to ship
    worker.stdin.close()
    worker.wait(30)
    subprocess.run([EDGERAG, *sync[:4], "--once"], check=True, timeout=300)
    assert shipped(state) == engine.store.last_lsn()
    upstream = open_upstream(UpstreamSpec("qdrant", str(target)))
    try:
        assert_upstream_equals_store(engine, upstream)
    finally:
        upstream.close()
        state.close()
        engine.close()
