"""Encryption at rest: what it costs. Ingest and query latency, open time and memory, on vs off.

    PYTHONPATH=src python benchmarks/crypto_bench.py [--vectors 20000] [--dim 384] [--docs 300]

Every measurement runs in a fresh child process (clean RSS), once with a plain collection and
once with an encrypted one (SQLCipher store; indexes kept in RAM and rebuilt from the store on
open; originals in a tmpfs file instead of a memory-mapped file on disk):

- ingest: ``--docs`` generated text documents through ``Engine.ingest`` in batches of 20
  (real chunking, FTS5, entity graph, op log, synchronous=FULL), the hash encoder so that the
  storage cost is not drowned by a model (MiniLM would add the same ms to both sides);
- query: a ``--vectors`` × ``--dim`` synthetic collection (faiss HNSW int8 + rescoring on the
  f32 originals, the default index): open time, hybrid ``Engine.search`` p50/p95 (encode, ANN,
  rescoring, BM25, entities, hydration), the index alone (ANN + rescoring) p50/p95, and RSS
  after the queries (total, anonymous, shared: tmpfs pages show up as shared).

Prints a Markdown table; numbers vary with load (2 shared cores here), ratios less so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgerag import crypto
from edgerag.bench.stats import percentile as pct

BATCH = 20


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child_ingest(db: Path, encrypt: bool, docs: int) -> dict[str, float]:
    from edgerag import Engine, EngineConfig
    from edgerag.bench.synthetic import _payload

    rng = np.random.default_rng(1)
    texts = [(f"doc-{i:05d}.txt", _payload(rng, 2400).encode()) for i in range(docs)]
    config = EngineConfig(encoder="hash", encrypt=encrypt)
    started = time.perf_counter()
    per_batch = []
    with Engine.open(db, config) as engine:
        for start in range(0, docs, BATCH):
            t = time.perf_counter()
            engine.ingest(texts[start : start + BATCH])
            per_batch.append((time.perf_counter() - t) * 1000 / BATCH)
    total = time.perf_counter() - started
    return {"ms_per_doc": statistics.median(per_batch), "docs_per_s": docs / total}


def child_query(db: Path, queries: int) -> dict[str, float]:
    from edgerag.bench.synthetic import _WORDS, open_synthetic, perturb
    from edgerag.index.base import IndexConfig

    base_rss = _status_kb("VmRSS")
    spec = json.loads((db / "bench.json").read_text())
    t = time.perf_counter()
    engine = open_synthetic(db, spec["dim"], IndexConfig())
    open_s = time.perf_counter() - t
    index = engine.indexes["text"]
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(_WORDS, 4)) for _ in range(queries)]
    qv = perturb(index.get_vectors(index.keys()[:2000]), queries, seed=5)
    for text in texts[:20]:  # warm-up: page in what the queries touch
        engine.search(text, k=10)
    full, ann = [], []
    for text, vec in zip(texts, qv, strict=True):
        t = time.perf_counter()
        engine.search(text, k=10)
        full.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        index.search(vec[None, :], 10)
        ann.append((time.perf_counter() - t) * 1000)
    out = {
        "open_s": open_s,
        "search_p50_ms": pct(full, 50),
        "search_p95_ms": pct(full, 95),
        "index_p50_ms": pct(ann, 50),
        "index_p95_ms": pct(ann, 95),
        "rss_mb": (_status_kb("VmRSS") - base_rss) / 1024,
        "anon_mb": _status_kb("RssAnon") / 1024,
        "shmem_mb": _status_kb("RssShmem") / 1024,
        "encrypted": engine.store.encrypted,
    }
    engine.close()
    return out


def build(db: Path, encrypt: bool, n: int, dim: int) -> float:
    from edgerag import Engine, EngineConfig
    from edgerag.bench.synthetic import SyntheticEncoder, build_synthetic, clustered
    from edgerag.index.base import IndexConfig

    config = EngineConfig(encoder="hash", encrypt=encrypt, synchronous="OFF")
    Engine.open(db, config, encoder=SyntheticEncoder(dim)).close()
    t = time.perf_counter()
    build_synthetic(db, clustered(n, dim), IndexConfig(), items_per_doc=100).close()
    (db / "bench.json").write_text(json.dumps({"dim": dim}))
    return time.perf_counter() - t


def run_child(*args: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, db = args.child[0], Path(args.child[1])
        if kind == "ingest":
            result = child_ingest(db, args.child[2] == "1", args.docs)
        else:
            result = child_query(db, args.queries)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="edgerag-crypto-bench-") as tmp:
        key_file = Path(tmp) / "bench.key"
        crypto.write_key_file(key_file, crypto.new_key())
        env = {**os.environ, crypto.KEY_FILE_ENV: str(key_file)}
        os.environ[crypto.KEY_FILE_ENV] = str(key_file)
        rows = {}
        for label, encrypt in (("plain", False), ("encrypted", True)):
            ingest = run_child("ingest", f"{tmp}/ingest-{label}", "1" if encrypt else "0", env=env)
            build_s = build(Path(tmp) / f"q-{label}", encrypt, args.vectors, args.dim)
            query = run_child("query", f"{tmp}/q-{label}", env=env)
            assert bool(query.pop("encrypted")) == encrypt
            rows[label] = {**ingest, "build_s": build_s, **query}
    plain, enc = rows["plain"], rows["encrypted"]
    print(
        f"crypto_bench: ingest {args.docs} docs (hash encoder, batches of {BATCH}); "
        f"query {args.vectors} x {args.dim} (faiss int8 + rescoring), {args.queries} queries\n"
    )
    print("| metric | plain | encrypted | ratio |")
    print("|---|---:|---:|---:|")
    for name in (
        "ms_per_doc",
        "docs_per_s",
        "build_s",
        "open_s",
        "search_p50_ms",
        "search_p95_ms",
        "index_p50_ms",
        "index_p95_ms",
        "rss_mb",
        "anon_mb",
        "shmem_mb",
    ):
        a, b = plain[name], enc[name]
        ratio = f"{b / a:.2f}" if a else "-"
        print(f"| {name} | {a:.2f} | {b:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
