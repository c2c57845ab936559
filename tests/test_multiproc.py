"""Many real processes on one collection: `edgerag serve`, `edgerag ingest`, writers, readers.

After every scenario: `edgerag check` is clean and every stored document is found by a dense
search filtered to its source (an index that missed another process's write finds nothing).
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgerag import Engine, EngineConfig, IndexConfig
from edgerag.check import check_collection
from test_server_process import Server, create_key, edgerag_cmd, start

httpx = pytest.importorskip("httpx")

WORKER = Path(__file__).with_name("multiproc_worker.py")
FAST = EngineConfig(
    encoder="hash", index=IndexConfig(backend="faiss", quantization="int8"), checkpoint_ops=7
)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(edgerag_cmd(*args), capture_output=True, text=True, timeout=600, env=ENV)
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def worker(*args: str, stdin: bool = False) -> subprocess.Popen[str]:
    return wait_ready(spawn(*args, stdin=stdin))


def spawn(*args: str, stdin: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def wait_ready(proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    assert ready.strip() == "READY", proc.stderr.read() if proc.stderr else ""
    return proc


def note(name: str) -> bytes:
    token = name.split(".")[0].replace("-", "")
    return f"{token} service note: check the {token} valve and torque the bolts.".encode()


def all_documents(engine: Engine) -> list[dict]:
    docs: list[dict] = []
    while page := engine.documents(limit=1000, offset=len(docs)):
        docs += page
    return docs


def verify(
    db: Path,
    acked: set[str] = frozenset(),
    deleted: set[str] = frozenset(),
    searched: set[str] | None = None,
    sample: int | None = None,
) -> int:
    """`edgerag check` clean; every acknowledged write present; every stored document found
    by a dense search filtered to its source (with ``searched``/``sample``: the documents not
    in ``searched`` plus ``sample`` of those that are). Returns the number of documents."""
    report = check_collection(db)
    assert report.ok, report.problems
    with Engine.open(db) as engine:
        docs = all_documents(engine)
        stored = {d["doc_id"] for d in docs}
        assert not (acked - deleted) - stored, (
            f"acknowledged but lost: {(acked - deleted) - stored}"
        )
        assert not stored & deleted, f"deleted but present: {stored & deleted}"
        if searched is not None:
            old = [d for d in docs if d["doc_id"] in searched]
            rng = random.Random(len(docs))
            old = rng.sample(old, min(len(old), sample or 0))
            docs = [d for d in docs if d["doc_id"] not in searched] + old
            searched |= stored
        for doc in docs:
            token = Path(doc["source"]).stem.replace("-", "")
            hits = engine.search(token, k=3, filters={"source": doc["source"]}, mode="dense")
            assert [h.doc_id for h in hits.hits][:1] == [doc["doc_id"]], doc["source"]
        stats = engine.stats()["spaces"]["text"]
        assert stats["lag"] == 0 and stats["in_sync"], stats
        assert stats["vectors"] == sum(engine.store.count_items().values())
    return len(stored)


_WRITE_KEYS: dict[Path, str] = {}


def serve(db: Path) -> Server:
    """`edgerag serve` on ``db``, with a write key (created once per collection)."""
    if db not in _WRITE_KEYS:
        _WRITE_KEYS[db] = create_key(db, "write")
    server = start(db)
    server.keys = {"write": _WRITE_KEYS[db]}
    return server


def http_ingest(server: Server, name: str) -> None:
    with server.client() as c:
        auth = {"Authorization": f"Bearer {server.keys['write']}"}
        r = c.post("/ingest", files={"files": (name, note(name))}, headers=auth)
        assert r.status_code == 200, r.text


def http_finds(server: Server, source: str) -> bool:
    token = Path(source).stem.replace("-", "")
    with server.client() as c:
        r = c.post("/search", json={"query": token, "filters": {"source": source}, "mode": "dense"})
        assert r.status_code == 200, r.text
        return any(Path(h["source"]).name == Path(source).name for h in r.json()["hits"])


def test_serve_cli_and_http_ingests_interleaved(tmp_path: Path) -> None:
    """The issue's repro: a server, CLI ingests beside it, HTTP ingests, a restart."""
    db = tmp_path / "kb"
    Engine.open(db, FAST).close()
    files = tmp_path / "files"
    files.mkdir()
    server = serve(db)
    try:
        sources = []
        for i in range(3):
            path = files / f"cli-{i}.txt"
            path.write_bytes(note(path.name))
            cli("ingest", str(path), "--db", str(db))  # beside the running server
            sources.append(str(path.resolve()))
            http_ingest(server, f"http-{i}.txt")
            sources.append(f"http-{i}.txt")
        # the server sees the CLI's writes without a restart
        assert all(http_finds(server, s) for s in sources)
        with server.client() as c:
            ready = c.get("/readyz")
            assert ready.status_code == 200, ready.text
            text = c.get("/stats").json()["spaces"]["text"]
            assert text["vectors"] == text["store_vectors"] == 6 and text["lag"] == 0
    finally:
        server.stop()
    server = serve(db)  # restart: indexes load the newest checkpoint and replay the rest
    try:
        assert all(http_finds(server, s) for s in sources)
        with server.client() as c:
            assert c.get("/readyz").status_code == 200
    finally:
        server.stop()
    stats = json.loads(cli("stats", "--db", str(db), "--json").stdout)["spaces"]["text"]
    assert stats["vectors"] == stats["store_vectors"] == 6 and stats["lag"] == 0
    assert cli("check", "--db", str(db)).returncode == 0
    assert verify(db) == 6


def test_four_concurrent_cli_ingests(tmp_path: Path) -> None:
    db = tmp_path / "kb"
    dirs = []
    for w in range(4):
        d = tmp_path / f"batch{w}"
        d.mkdir()
        for i in range(50):
            (d / f"b{w}-{i}.txt").write_bytes(note(f"b{w}-{i}.txt"))
        dirs.append(d)
    # four processes create and fill one new collection at the same time
    procs = [
        subprocess.Popen(
            edgerag_cmd("ingest", str(d), "--db", str(db), "--encoder", "hash", "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for d in dirs
    ]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, out + err
    result = cli("check", "--db", str(db), "--json")
    report = json.loads(result.stdout)
    assert report["ok"] and report["checked"]["index_text_vectors"] == 200, report
    assert verify(db) == 200


def test_four_concurrent_cli_ingests_default_minilm(tmp_path: Path) -> None:
    """The same with the real default encoder (MiniLM) in every process."""
    db = tmp_path / "kb"
    procs = []
    for w in range(4):
        d = tmp_path / f"batch{w}"
        d.mkdir()
        for i in range(5):
            (d / f"m{w}-{i}.txt").write_bytes(note(f"m{w}-{i}.txt"))
        procs.append(
            subprocess.Popen(
                edgerag_cmd("ingest", str(d), "--db", str(db)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=ENV,
            )
        )
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, out + err
    assert json.loads((db / "config.json").read_text())["encoder"] == "minilm"
    assert cli("check", "--db", str(db)).returncode == 0
    assert verify(db) == 20


def test_reader_sees_every_acknowledged_write_of_another_process(tmp_path: Path) -> None:
    """A reader searching while another process writes: once the writer acknowledged a
    document, the reader's very next search (one, no retry) finds it."""
    db = tmp_path / "kb"
    Engine.open(db, FAST).close()
    writer = worker("write", str(db), "w", "0")
    seeker = worker("seek", str(db), stdin=True)
    reader = worker("read", str(db))
    assert writer.stdout and seeker.stdin and seeker.stdout
    acked: set[str] = set()
    deleted: set[str] = set()
    try:
        while len(acked) < 40:
            kind, doc_id = writer.stdout.readline().split()
            if kind == "DEL":
                deleted.add(doc_id)
                continue
            acked.add(doc_id)
            if _number(doc_id) % 7 == 3:
                continue  # the writer deletes these a little later, maybe before the seek
            seeker.stdin.write(doc_id + "\n")
            seeker.stdin.flush()
            answer = seeker.stdout.readline().split()
            assert answer == ["SEEN", doc_id], answer
    finally:
        for p in (writer, seeker, reader):
            p.kill()
        last = max(_collect(writer, acked, deleted), *(_number(d) for d in acked))
        if last % 7 == 6:  # killed around the delete that follows this write: either is fine
            acked.discard(f"w-{last - 3}.txt")
        for p in (seeker, reader):
            p.wait()
    assert reader.returncode == -signal.SIGKILL  # the reader kept searching throughout
    verify(db, acked, deleted)


def _number(doc_id: str) -> int:
    return int(doc_id.split("-")[1].removesuffix(".txt"))


def _collect(proc: subprocess.Popen[str], acked: set[str], deleted: set[str]) -> int:
    """Record a killed writer's acknowledgements; return the last document number it acked."""
    assert proc.stdout is not None
    out = proc.stdout.read()  # not communicate(): it would skip lines already buffered here
    proc.wait()
    lines = [line.split() for line in out.splitlines() if line.startswith(("ACK", "DEL"))]
    last = -1
    for kind, doc_id in lines:
        if kind == "ACK":
            acked.add(doc_id)
            last = max(last, _number(doc_id))
        else:
            deleted.add(doc_id)
            acked.discard(doc_id)
    if lines and lines[-1][0] == "ACK" and _number(lines[-1][1]) % 7 == 6:
        # killed during (or just before) the delete that follows this write: either outcome
        # is fine, only acknowledged deletes are promised
        prefix, n = lines[-1][1].split("-")[0], _number(lines[-1][1])
        acked.discard(f"{prefix}-{n - 3}.txt")
    return last


def _kill_rounds(tmp_path: Path, rounds: int, seed: int) -> None:
    """Writers, a reader, `edgerag ingest` and `edgerag serve` on one collection, each killed
    with SIGKILL at a random point; after every round the collection must check clean."""
    rng = random.Random(seed)
    db = tmp_path / "kb"
    Engine.open(db, FAST).close()
    files = tmp_path / "files"
    files.mkdir()
    acked: set[str] = set()
    deleted: set[str] = set()
    next_doc = {"a": 0, "b": 10_000}
    server: Server | None = None
    searched: set[str] = set()
    # starting `edgerag serve` costs seconds on a loaded box: kill it in a few rounds only
    server_kills = set(rng.sample(range(rounds - 1), max(1, rounds // 20)))
    for round_no in range(rounds):
        # writer a in every round, beside it in turn writer b, a reader, `edgerag ingest`
        # (every Python process costs a second or more to start on a loaded 2-core box)
        other = ("b", "reader", "cli")[round_no % 3]
        procs = {"a": spawn("write", str(db), "a", str(next_doc["a"]))}
        if other == "b":
            procs["b"] = spawn("write", str(db), "b", str(next_doc["b"]))
        elif other == "reader":
            procs["reader"] = spawn("read", str(db))
        else:  # an `edgerag ingest` of a few files, killed at random too
            batch = files / f"r{round_no}"
            batch.mkdir()
            for i in range(3):
                (batch / f"c{round_no}-{i}.txt").write_bytes(note(f"c{round_no}-{i}.txt"))
            procs["cli"] = subprocess.Popen(
                edgerag_cmd("ingest", str(batch), "--db", str(db)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=ENV,
            )
        if server is None:  # a long-lived server, killed now and then and started again
            server = serve(db)
        for proc in procs.values():
            if isinstance(proc.stdout, io.TextIOBase):
                wait_ready(proc)
        name = f"h-{round_no}.txt"
        http_ingest(server, name)  # HTTP 200 = acknowledged
        acked.add(name)
        kill_server = round_no in server_kills
        victims = sorted(procs) + (["serve"] if kill_server else [])
        # kill every process at its own random moment
        for name in rng.sample(victims, len(victims)):
            time.sleep(rng.uniform(0.0, 0.3))
            if name == "serve":
                server.proc.send_signal(signal.SIGKILL)
            else:
                procs[name].send_signal(signal.SIGKILL)
        for name, proc in procs.items():
            if name in ("a", "b"):
                next_doc[name] = max(next_doc[name], _collect(proc, acked, deleted) + 1)
            else:
                proc.communicate()
        if kill_server:
            server.stop()
            server = None
        else:  # the live server also sees everything the others wrote meanwhile
            with server.client() as c:
                text = c.get("/stats").json()["spaces"]["text"]
                assert text["lag"] == 0 and text["vectors"] == text["store_vectors"], text
                assert c.get("/readyz").status_code == 200
        last_round = round_no == rounds - 1
        verify(db, acked, deleted, None if last_round else searched, sample=50)
    if server is not None:
        server.stop()
    assert len(acked) > 2 * rounds  # the kills interrupted busy writers


def test_sigkill_any_process_20_times(tmp_path: Path) -> None:
    _kill_rounds(tmp_path, 20, seed=10)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 100 rounds of process starts: minutes on a loaded 2-core box
def test_sigkill_any_process_100_times(tmp_path: Path) -> None:
    _kill_rounds(tmp_path, 100, seed=11)
