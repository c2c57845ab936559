"""Performance regression gate (``make bench-check``): ratios measured side by side, not times.

A shared or noisy machine makes absolute latencies useless as a gate, so this measures, in one
process and interleaved query by query (every query runs through all three in rotating order):

* ``edgerag``: the whole single-query path: ``SpaceIndex.search`` (faiss HNSW-SQ8 + rescoring)
  + payload hydration from SQLite, top-10;
* ``faiss``: the raw faiss ``index.search`` on the very same graph (no rescoring, no payload);
* ``exact``: a numpy brute-force scan of the same vectors (matmul + argpartition).

and gates on ``edgerag / faiss`` and ``edgerag / exact`` (medians over rounds of per-round
median latencies) plus recall@10.

Two more same-run ratios on real text (perlfaq from Debian perl-doc, MiniLM int8):

* ``query_over_primitives``: the text query path a user gets, ``Engine.search`` hybrid k=5
  with the result cache and the query-vector memo off (encode → ANN + BM25 + entity → fuse →
  hydrate), over the library calls it cannot avoid, timed interleaved on the same questions:
  one ONNX encode, one raw faiss search, one raw BM25 query (Tantivy, or FTS5 under
  ``lexical="fts5"``), one SELECT of k payload rows;
* ``search_over_primitives`` (reported, not gated: too noisy on a shared box): the same
  without the encode on both sides (memo hit vs known vector);
* ``ingest_over_encode``: ``Engine.ingest`` of perlfaq files (extract + chunk + encode + SQLite
  + index), seconds per chunk, over encoding the same chunks' texts with the same encoder.

Usage::

    python benchmarks/bench_check.py                      # compare with benchmarks/baseline.json
    python benchmarks/bench_check.py --update             # re-record the baseline

Exit 1 when a ratio grew by more than ``--tolerance`` (default 20%) or recall@10 fell by more
than 0.02.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# One BLAS thread: a single-query GEMV gains nothing from more, and on a shared box a threaded
# BLAS spins and swings the exact-scan latency by ±40% between rounds (measured).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from edgerag.bench.stats import recall_at_k  # noqa: E402
from edgerag.bench.synthetic import build_synthetic, clustered, perturb  # noqa: E402
from edgerag.index.base import IndexConfig  # noqa: E402

BASELINE = Path(__file__).with_name("baseline.json")
RATIOS = ("edgerag_over_faiss", "edgerag_over_exact")
# search_over_primitives is reported, not gated: on a loaded box its per-round spread was
# 0.2-27x (onnxruntime's spinning threads after an encode starve whatever runs next).
TEXT_RATIOS = ("query_over_primitives", "ingest_over_encode")
PERLFAQ = "/usr/share/perl/5.36/pod/perlfaq[1-9].pod"


def _systems(engine: Any, data: np.ndarray, k: int) -> dict[str, Any]:
    space = engine.indexes["text"]
    faiss_engine = space._engine  # noqa: SLF001 - the raw library on the same graph
    index, labels = faiss_engine._index, faiss_engine._label_keys  # noqa: SLF001
    import faiss

    params = faiss.SearchParametersHNSW(efSearch=max(space.config.ef_search, k))

    def run_edgerag(q: np.ndarray) -> np.ndarray:
        res, _ = space.search(q, k)
        fused = [
            (int(x), float(s)) for x, s in zip(res.keys[0], res.scores[0], strict=True) if x >= 0
        ]
        engine.retriever._hydrate(fused, {"dense": fused})  # noqa: SLF001
        return res.keys[0]

    def run_faiss(q: np.ndarray) -> np.ndarray:
        _, ids = index.search(q, k, params=params)
        return labels[ids[0]]

    def run_exact(q: np.ndarray) -> np.ndarray:  # rows, not keys: timed only
        s = data @ q[0]
        top = np.argpartition(-s, k)[:k]
        return top[np.argsort(-s[top])]

    return {"edgerag": run_edgerag, "faiss": run_faiss, "exact": run_exact}


def measure(n: int, dim: int, queries: int, rounds: int, seed: int = 42) -> dict[str, Any]:
    data = clustered(n, dim, seed)
    qs = perturb(data, queries, seed + 1)
    k = 10
    with tempfile.TemporaryDirectory(prefix="edgerag-bench-check-") as tmp:
        engine = build_synthetic(Path(tmp) / "c", data, IndexConfig(), payload_chars=600)
        try:
            space = engine.indexes["text"]
            truth = space.exact_search(qs, k).keys
            systems = _systems(engine, data, k)
            names = list(systems)
            for i in range(min(50, queries)):  # warm up every path
                for fn in systems.values():
                    fn(qs[i : i + 1])
            per_round: dict[str, list[float]] = {r: [] for r in RATIOS}
            medians: dict[str, list[float]] = {s: [] for s in names}
            found = np.full((queries, k), -1, dtype=np.int64)
            for rnd in range(rounds):
                lat: dict[str, list[float]] = {s: [] for s in names}
                for i in range(queries):
                    rot = (i + rnd) % len(names)
                    for name in names[rot:] + names[:rot]:  # rotate who goes first
                        t0 = time.perf_counter_ns()
                        out = systems[name](qs[i : i + 1])
                        lat[name].append((time.perf_counter_ns() - t0) / 1e6)
                        if name == "edgerag" and rnd == 0:
                            found[i, : len(out)] = out[:k]
                med = {s: float(np.median(v)) for s, v in lat.items()}
                for s in names:
                    medians[s].append(med[s])
                per_round["edgerag_over_faiss"].append(med["edgerag"] / med["faiss"])
                per_round["edgerag_over_exact"].append(med["edgerag"] / med["exact"])
        finally:
            engine.close()
    return {
        "params": {
            "n": n,
            "dim": dim,
            "queries": queries,
            "rounds": rounds,
            "k": k,
            "index": "faiss/int8 (IndexConfig defaults)",
        },
        "ratios": {r: round(float(np.median(v)), 4) for r, v in per_round.items()},
        "ratio_spread": {r: [round(min(v), 4), round(max(v), 4)] for r, v in per_round.items()},
        "median_ms": {s: round(float(np.median(v)), 4) for s, v in medians.items()},
        "recall@10": round(recall_at_k(found, truth, k), 4),
        "machine": {"cores": os.cpu_count(), "loadavg": round(os.getloadavg()[0], 2)},
    }


def _perlfaq_questions(limit: int) -> list[str]:
    import glob
    import re

    out = []
    for path in sorted(glob.glob(PERLFAQ)):
        out += re.findall(r"^=head2 (.+)$", Path(path).read_text(errors="replace"), re.M)
    return out[:: max(1, len(out) // limit)][:limit]


def _text_primitives(engine: Any, k: int, encoded: bool = True) -> Any:
    """The unavoidable library calls of one text query, without edgerag's glue (``encoded``
    False: the query vector is already known, as with a memo hit)."""
    import faiss

    encode = engine.cache.memo._encode  # noqa: SLF001 - the encoder under the memo
    raw = engine.indexes["text"]._engine  # noqa: SLF001
    index, labels = raw._index, raw._label_keys  # noqa: SLF001
    space = engine.indexes["text"]
    kk = max(k, engine.config.candidates)
    params = faiss.SearchParametersHNSW(efSearch=max(space.config.ef_search, kk))
    conn = engine.store._reader  # noqa: SLF001

    known: dict[str, np.ndarray] = {}
    bm25 = _raw_bm25(engine)

    def run(question: str) -> None:
        if encoded or question not in known:
            known[question] = encode([question])
        vec = known[question]
        _, ids = index.search(vec, kk, params=params)
        keys = labels[ids[0][ids[0] >= 0]][:k].tolist()
        bm25(question, kk)
        conn.execute(
            f"SELECT key, text FROM items WHERE key IN ({','.join('?' * len(keys))})", keys
        ).fetchall()

    return run


def _raw_bm25(engine: Any) -> Callable[[str, int], Any]:
    """One BM25 query through the library the engine's lexical engine uses, without edgerag's
    glue: a Tantivy search over the built index (query terms analysed, stored keys read), or
    one FTS5 statement."""
    from edgerag.retrieval.text_query import fts_match

    lexical = engine.lexical
    if lexical.name == "fts5":
        conn = engine.store._reader  # noqa: SLF001
        sql = "SELECT rowid FROM items_fts WHERE items_fts MATCH ? ORDER BY bm25(items_fts) LIMIT ?"
        return lambda question, k: conn.execute(sql, (fts_match(question), k)).fetchall()
    searcher = lexical._follow()  # noqa: SLF001 - built once, outside the timed calls

    def search(question: str, k: int) -> list[int]:
        query = lexical.match(question)
        return [searcher.doc(addr)["key"][0] for _, addr in searcher.search(query, k).hits]

    return search


def measure_text(files: int, questions: int, rounds: int) -> dict[str, Any]:
    """Ingest and query-path ratios on perlfaq (see the module docstring)."""
    import glob

    from edgerag import Engine, EngineConfig

    paths = sorted(glob.glob(PERLFAQ))[:files]
    docs = [(Path(p).stem + ".txt", Path(p).read_bytes()) for p in paths]
    qs = _perlfaq_questions(questions)
    k = 5
    with tempfile.TemporaryDirectory(prefix="edgerag-bench-check-") as tmp:
        engine = Engine.open(Path(tmp) / "db", EngineConfig(synchronous="OFF"))
        try:
            engine.cache.enabled = False
            t0 = time.perf_counter()
            report = engine.ingest(docs)
            ingest_s = time.perf_counter() - t0
            if not report.ok:
                raise SystemExit(f"bench-check ingest failed: {report.errors}")
            texts = [r["text"] for r in engine.store.items(_all_keys(engine)).values()]
            encode = engine.cache.memo._encode  # noqa: SLF001
            t0 = time.perf_counter()
            encode(texts)
            encode_s = time.perf_counter() - t0

            memo = engine.cache.memo._data  # noqa: SLF001 - the query-vector memo's LRU
            vectors = {q: encode([q]) for q in qs}

            def path(question: str) -> None:
                memo.pop(question, None)  # pay for the encode, as the primitives do
                engine.search(question, k=k, mode="hybrid")

            def search_only(question: str) -> None:  # query vector memoised: no encode
                memo[question] = vectors[question]
                engine.search(question, k=k, mode="hybrid")

            # Encoding is most of the path, so the first ratio barely sees the glue; the second
            # (memo hit vs the primitives minus the encode) does.
            systems = {
                "path": path,
                "primitives": _text_primitives(engine, k),
                "search": search_only,
                "search_primitives": _text_primitives(engine, k, encoded=False),
            }
            for q in qs[:10]:
                for fn in systems.values():
                    fn(q)
            per_round: dict[str, list[float]] = {"query": [], "search": []}
            medians: dict[str, list[float]] = {s: [] for s in systems}
            names = list(systems)
            for rnd in range(rounds):
                lat: dict[str, list[float]] = {s: [] for s in systems}
                for i, q in enumerate(qs):
                    rot = (i + rnd) % len(names)
                    for name in names[rot:] + names[:rot]:  # rotate who goes first
                        t = time.perf_counter_ns()
                        systems[name](q)
                        lat[name].append((time.perf_counter_ns() - t) / 1e6)
                med = {s: float(np.median(v)) for s, v in lat.items()}
                for s in systems:
                    medians[s].append(med[s])
                per_round["query"].append(med["path"] / med["primitives"])
                per_round["search"].append(med["search"] / med["search_primitives"])
        finally:
            engine.close()
    chunks = report.items
    return {
        "params": {"files": len(paths), "chunks": chunks, "questions": len(qs), "k": k},
        "ratios": {
            "query_over_primitives": round(float(np.median(per_round["query"])), 4),
            "search_over_primitives": round(float(np.median(per_round["search"])), 4),
            "ingest_over_encode": round(ingest_s / encode_s, 4),
        },
        "ratio_spread": {
            f"{name}_over_primitives": [round(min(v), 4), round(max(v), 4)]
            for name, v in per_round.items()
        },
        "median_ms": {s: round(float(np.median(v)), 4) for s, v in medians.items()},
        "chunks_per_s": {
            "ingest": round(chunks / ingest_s, 1),
            "encode_only": round(len(texts) / encode_s, 1),
        },
    }


def _all_keys(engine: Any) -> list[int]:
    rows = engine.store._reader.execute("SELECT key FROM items")  # noqa: SLF001
    return [r[0] for r in rows]


def compare(fresh: dict[str, Any], base: dict[str, Any], tolerance: float) -> list[str]:
    """Regressions as messages (empty: pass)."""
    problems = []
    sections = [(fresh, base, RATIOS)]
    if "text" in fresh:
        if "text" not in base:
            return ["the baseline has no text section; re-record it with --update"]
        sections.append((fresh["text"], base["text"], TEXT_RATIOS))
    for now_s, then_s, ratios in sections:
        if now_s["params"] != then_s["params"]:
            problems.append(
                f"parameters differ from the baseline ({then_s['params']}); "
                "re-record it with --update"
            )
            continue
        for r in ratios:
            now, then = now_s["ratios"][r], then_s["ratios"][r]
            if now > then * (1 + tolerance):
                problems.append(
                    f"{r} {now:.3f} vs baseline {then:.3f} "
                    f"(+{(now / then - 1) * 100:.0f}% > {tolerance * 100:.0f}%)"
                )
    if fresh["recall@10"] < base["recall@10"] - 0.02:
        problems.append(f"recall@10 {fresh['recall@10']:.3f} vs baseline {base['recall@10']:.3f}")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--baseline", type=Path, default=BASELINE)
    p.add_argument("--update", action="store_true", help="write the fresh run as the baseline")
    p.add_argument("--tolerance", type=float, default=0.20)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--files", type=int, default=3, help="perlfaq files ingested (text ratios)")
    p.add_argument("--questions", type=int, default=60, help="perlfaq questions asked")
    p.add_argument("--no-text", action="store_true", help="index ratios only (no MiniLM)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    fresh = measure(args.n, args.dim, args.queries, args.rounds)
    if not args.no_text:
        fresh["text"] = measure_text(args.files, args.questions, args.rounds)
    print(json.dumps(fresh, indent=1))
    print(f"measured in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    if args.update:
        args.baseline.write_text(json.dumps(fresh, indent=1) + "\n")
        print(f"baseline written to {args.baseline}")
        return 0
    if not args.baseline.exists():
        print(f"FAIL: no baseline at {args.baseline} (run with --update first)")
        return 1
    problems = compare(fresh, json.loads(args.baseline.read_text()), args.tolerance)
    for msg in problems:
        print(f"regression: {msg}")
    print(
        "FAIL: bench-check"
        if problems
        else f"PASS: bench-check (ratios within {args.tolerance * 100:.0f}% of the baseline)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
