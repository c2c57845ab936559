"""Cross-process visibility: from a write acknowledged in process A to a search in process B
that finds it, on one collection directory.

Process A ingests one small document at a time (pausing 50–150 ms between writes) and prints
the wall-clock time ``Engine.ingest`` returned (the commit plus A's own index update: what a
user sees as "acknowledged"). Process B searches for the next document over and over (a dense
search filtered to its source) and prints when it first finds it. Each process follows the op
log before every search; this measures that path end to end, including B's polling interval
(one search). B encodes each query before the write lands (a query encoding is the cost of
any search, not of visibility). Optionally ``--preload N`` documents first, so B's index is not
tiny.

    python benchmarks/visibility_bench.py --docs 200
    python benchmarks/visibility_bench.py --docs 200 --encoder minilm --preload 2000
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgerag import Engine, EngineConfig
from edgerag.bench.stats import percentile as pct


def text(i: int) -> bytes:
    return f"vis{i} visibility probe {i}: check valve {i % 17} and gland bolts.".encode()


def writer(db: str, n: int) -> None:
    rng = random.Random(1)
    with Engine.open(db) as engine:
        print("READY", flush=True)
        sys.stdin.readline()  # start together with the reader
        for i in range(n):
            time.sleep(rng.uniform(0.05, 0.15))
            engine.ingest([(f"vis-{i}.txt", text(i))])
            print(f"ACK {i} {time.time():.6f}", flush=True)


def reader(db: str, n: int) -> None:
    with Engine.open(db) as engine:
        print("READY", flush=True)
        searches = 0
        for i in range(n):
            source = f"vis-{i}.txt"
            # encode the query before the write lands: the latency measured is following
            # the log + searching, not MiniLM encoding a query (memoised by the engine)
            engine.cache.query_vector(f"vis{i}")
            while True:
                hits = engine.search(f"vis{i}", k=1, filters={"source": source}, mode="dense")
                searches += 1
                if hits.hits:
                    break
            print(f"SEEN {i} {time.time():.6f}", flush=True)
        print(f"SEARCHES {searches}", flush=True)


def child(role: str, db: Path, n: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--role", role, "--db", str(db), "--docs", str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--encoder", default="hash", choices=["hash", "minilm"])
    ap.add_argument("--preload", type=int, default=0, help="documents ingested beforehand")
    ap.add_argument("--role", choices=["writer", "reader"], help=argparse.SUPPRESS)
    ap.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "writer":
        return writer(str(args.db), args.docs)
    if args.role == "reader":
        return reader(str(args.db), args.docs)
    db = Path(tempfile.mkdtemp(prefix="edgerag-vis-")) / "kb"
    with Engine.open(db, EngineConfig(encoder=args.encoder)) as engine:
        pre = [
            (f"pre-{i}.txt", f"preloaded note {i} on pump {i % 97}".encode())
            for i in range(args.preload)
        ]
        for start in range(0, len(pre), 200):
            engine.ingest(pre[start : start + 200])
    w, r = child("writer", db, args.docs), child("reader", db, args.docs)
    assert w.stdin and w.stdout and r.stdout
    w.stdin.write("go\n")
    w.stdin.flush()
    acked = {int(p[1]): float(p[2]) for p in (line.split() for line in w.stdout) if p[0] == "ACK"}
    seen, searches = {}, 0
    for line in r.stdout:
        parts = line.split()
        if parts[0] == "SEEN":
            seen[int(parts[1])] = float(parts[2])
        elif parts[0] == "SEARCHES":
            searches = int(parts[1])
    w.wait()
    r.wait()
    lat = [max(0.0, (seen[i] - acked[i]) * 1000) for i in range(args.docs)]
    print(
        f"encoder {args.encoder}, preload {args.preload}, {args.docs} writes, "
        f"{searches} reader searches"
    )
    print("| ack → visible in another process | p50 ms | p90 ms | p99 ms | max ms | mean ms |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.encoder} | {statistics.median(lat):.1f} | {pct(lat, 90):.1f} | "
        f"{pct(lat, 99):.1f} | {max(lat):.1f} | {statistics.mean(lat):.1f} |"
    )


if __name__ == "__main__":
    main()
