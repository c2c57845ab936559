"""HTTP latency benchmark: a real ``edgerag serve`` process over the demo corpus (MiniLM int8).

Measures POST /search and POST /ask at concurrency 1, 8 and 32 (P50/P95/P99/max, QPS), then
search while an ingest runs beside it (the goal: P99 <= 2x the idle P99 at the same
concurrency). The result cache is off (``EDGERAG_RESULT_CACHE=false``) so every request pays
for encode + ANN + BM25 (+ rerank and generation for ask). Queries are the demo questions
plus the perlfaq questions (Debian perl-doc) when installed; the background ingest uploads the
perlfaq pod files (or re-ingests the demo corpus under new names when perl-doc is missing).

    .venv/bin/python benchmarks/http_bench.py [--requests 200] [--ask-requests 100]
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPORA = [ROOT / "src" / "edgerag" / "demo_corpus", ROOT / "demo" / "corpus"]
PERLFAQ = "/usr/share/perl/5.36/pod/perlfaq[1-9].pod"


def corpus_dir() -> Path:
    for path in CORPORA:
        if path.is_dir():
            return path
    sys.exit("no demo corpus found (looked in src/edgerag/demo_corpus and demo/corpus)")


def questions(corpus: Path) -> list[str]:
    out: list[str] = []
    for path in (corpus / "questions.txt", ROOT / "demo" / "questions.txt"):
        if path.exists():
            out += [q.strip() for q in path.read_text().splitlines() if q.strip()]
    for pod in sorted(glob.glob(PERLFAQ)):
        out += re.findall(r"^=head2 (.+)$", Path(pod).read_text(errors="replace"), re.M)
    return list(dict.fromkeys(out))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db: Path, port: int) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("edgerag")
    cmd = (
        [str(exe)]
        if exe.exists()
        else [sys.executable, "-c", "from edgerag.cli import main; main()"]
    )
    env = {**os.environ, "EDGERAG_RESULT_CACHE": "false", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [*cmd, "serve", "--db", str(db), "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("server did not start")


async def load(
    url: str, path: str, bodies: list[dict], concurrency: int
) -> tuple[np.ndarray, float, list[dict]]:
    """Send every body with ``concurrency`` workers; latencies (ms), wall seconds, replies."""
    latencies: list[float] = []
    replies: list[dict] = []
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                t0 = time.perf_counter()
                r = await client.post(path, json=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"{path} {r.status_code}: {r.text[:200]}")
                replies.append(r.json())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return np.array(latencies), wall, replies


def row(name: str, c: int, lat: np.ndarray, wall: float) -> str:
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return (
        f"| {name} | {c} | {len(lat)} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {lat.max():.1f} "
        f"| {len(lat) / wall:.1f} |"
    )


def ingest_beside(
    url: str, key: str, files: list[tuple[str, bytes]], stop: threading.Event, done: list[int]
) -> None:
    """Upload files one by one until told to stop (a steady writer beside the readers)."""
    with httpx.Client(base_url=url, timeout=600, headers={"X-API-Key": key}) as client:
        i = 0
        while not stop.is_set():
            name, data = files[i % len(files)]
            # A new name each round: every upload is real work (extract, chunk, encode, write).
            r = client.post("/ingest", files={"files": (f"r{i}-{name}", data)})
            if r.status_code == 200:
                done[0] += r.json()["items"]
            i += 1


def background_files(corpus: Path) -> list[tuple[str, bytes]]:
    pods = sorted(glob.glob(PERLFAQ))
    if pods:
        return [(Path(p).stem + ".txt", Path(p).read_bytes()) for p in pods]
    return [(p.name, p.read_bytes()) for p in sorted(corpus.iterdir()) if p.is_file()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="search requests per level")
    parser.add_argument("--ask-requests", type=int, default=100, help="ask requests per level")
    parser.add_argument("--concurrency", default="1,8,32")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    from edgerag.server.auth import KeyStore

    corpus = corpus_dir()
    qs = questions(corpus)
    tmp = Path(tempfile.mkdtemp(prefix="edgerag-http-bench-"))
    db = tmp / "kb"
    _, key = KeyStore(db).create("write", "bench")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(db, port)
    lines: list[str] = []
    try:
        files = [
            ("files", (p.name, p.read_bytes()))
            for p in sorted(corpus.iterdir())
            if p.is_file() and p.name != "questions.txt"
        ]
        t0 = time.perf_counter()
        r = httpx.post(f"{url}/ingest", files=files, headers={"X-API-Key": key}, timeout=600)
        r.raise_for_status()
        took = time.perf_counter() - t0
        stats = httpx.get(f"{url}/stats").json()
        header = (
            f"corpus {corpus.relative_to(ROOT)}: {stats['documents']} documents, "
            f"{sum(stats['items'].values())} items, ingested over HTTP in {took:.1f} s; "
            f"encoder {stats['encoder']['id']}, index {stats['config']['backend']}/"
            f"{stats['config']['quantization']}; {len(qs)} distinct queries; result cache off; "
            f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, {platform.python_version()}"
        )
        lines += [
            header,
            "",
            "| op | concurrency | requests | P50 ms | P95 ms | P99 ms | max ms | QPS |",
            "|---|---|---|---|---|---|---|---|",
        ]

        def bodies(n: int, offset: int) -> list[dict]:
            return [{"query": qs[(offset + i) % len(qs)], "k": 10} for i in range(n)]

        asyncio.run(load(url, "/search", bodies(20, 0), 4))  # warm up
        idle: dict[int, float] = {}
        stage_ms: dict[str, list[float]] = {}
        for c in levels:
            lat, wall, replies = asyncio.run(load(url, "/search", bodies(args.requests, c), c))
            idle[c] = float(np.percentile(lat, 99))
            lines.append(row("search", c, lat, wall))
            for reply in replies:
                for stage, ms in reply["timings_ms"].items():
                    stage_ms.setdefault(stage, []).append(ms)
        for c in levels:
            lat, wall, _ = asyncio.run(load(url, "/ask", bodies(args.ask_requests, 7 * c), c))
            lines.append(row("ask", c, lat, wall))
        lines += [
            "",
            "Search while an ingest runs beside it (same requests, goal P99 <= 2x idle):",
            "",
            "| concurrency | idle P99 ms | P99 during ingest ms | ratio | items "
            "ingested meanwhile |",
            "|---|---|---|---|---|",
        ]
        extra = background_files(corpus)
        for c in [lv for lv in levels if lv <= 8]:
            stop, done = threading.Event(), [0]
            writer = threading.Thread(target=ingest_beside, args=(url, key, extra, stop, done))
            writer.start()
            time.sleep(1.0)  # let the writer get going
            try:
                lat, _, _ = asyncio.run(load(url, "/search", bodies(args.requests, c), c))
            finally:
                stop.set()
                writer.join()
            p99 = float(np.percentile(lat, 99))
            lines.append(f"| {c} | {idle[c]:.1f} | {p99:.1f} | {p99 / idle[c]:.2f}x | {done[0]} |")
        means = ", ".join(f"{k} {np.mean(v):.2f}" for k, v in stage_ms.items())
        lines += ["", f"Server-side search stages, mean ms: {means}"]
    finally:
        proc.terminate()
        proc.wait(30)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
