"""onnxruntime session options for MiniLM, side by side in one run (same load, ratios).

Each configuration (intra-op threads, spinning, graph optimisation level) gets its own
``MiniLMEncoder``; rounds interleave the configurations so a change of machine load hits all of
them alike. Per configuration:

* chunk encode: ``encode`` over perlfaq 200-token chunks (length-bucketed batches): chunks/s
  (wall) and CPU ms per chunk (``time.process_time``: every thread of the process, so
  onnxruntime's spinning pool threads are counted);
* query encode: one short question per call (the query path): p50/p95 wall ms, CPU ms;
* next stage: a fixed numpy task (GEMV over 50k × 384 f32, about what an exact scan or a
  rescoring + FTS5 step costs) timed right after each query encode: spinning pool threads that
  keep a core after ``run()`` show up here as a slower next stage.

    PYTHONPATH=src .venv/bin/python benchmarks/onnx_options_bench.py [--chunks 96] [--queries 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ingest_bench import perlfaq_documents  # noqa: E402

from edgerag.encoders.minilm import MiniLMEncoder  # noqa: E402

# name → MiniLMEncoder keyword arguments; the first is the reference (the pre-change default
# on a 2-core box: min(4, cores) threads, onnxruntime's default spinning, level "all").
CONFIGS: dict[str, dict[str, Any]] = {
    "2 threads, spin (old default)": {"threads": 2, "spinning": True},
    "2 threads, no spin (new default)": {"threads": 2, "spinning": False},
    "1 thread, no spin": {"threads": 1, "spinning": False},
    "1 thread, spin": {"threads": 1, "spinning": True},
    "2 threads, no spin, level extended": {"threads": 2, "optimization": "extended"},
    "2 threads, no spin, level basic": {"threads": 2, "optimization": "basic"},
}


def questions(n: int) -> list[str]:
    sys.path.insert(0, str(Path(__file__).parent))
    import answer_bench

    qas = answer_bench.load_perlfaq() + answer_bench.load_zaragoza()
    return [qa.question for qa in qas[:: max(1, len(qas) // n)][:n]]


def timed(fn: Any) -> tuple[float, float]:
    """(wall s, process CPU s) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def one_round(enc: MiniLMEncoder, chunks: list[str], qs: list[str], table: np.ndarray) -> dict:
    encode = type(enc).encode  # bypass any memo an Engine may have installed
    wall, cpu = timed(lambda: encode(enc, chunks))
    out: dict[str, Any] = {"chunk_wall": wall, "chunk_cpu": cpu, "q_wall": [], "q_cpu": []}
    out["next"] = []
    query = np.ones(table.shape[1], dtype=np.float32)
    for q in qs:
        w, c = timed(lambda q=q: encode(enc, [q]))
        out["q_wall"].append(w)
        out["q_cpu"].append(c)
        t0 = time.perf_counter()
        table @ query  # the next stage of the query path, right after the encode
        out["next"].append(time.perf_counter() - t0)
    return out


def run(n_chunks: int, n_queries: int, rounds: int) -> dict[str, dict[str, float]]:
    _, chunks = perlfaq_documents(n_chunks)
    qs = questions(n_queries)
    table = np.random.default_rng(0).standard_normal((50_000, 384)).astype(np.float32)
    encoders = {name: MiniLMEncoder(**kw) for name, kw in CONFIGS.items()}
    for enc in encoders.values():
        enc.encode(chunks[:8] + qs[:4])  # warm-up: arenas, first-run allocations
    acc: dict[str, list[dict]] = {name: [] for name in encoders}
    for r in range(rounds):
        names = list(encoders) if r % 2 == 0 else list(encoders)[::-1]  # alternate the order
        for name in names:
            acc[name].append(one_round(encoders[name], chunks, qs, table))
    return {name: summarise(rs, len(chunks)) for name, rs in acc.items()}


def summarise(rounds: list[dict], n_chunks: int) -> dict[str, float]:
    q_wall = [x for r in rounds for x in r["q_wall"]]
    q_cpu = [x for r in rounds for x in r["q_cpu"]]
    nxt = [x for r in rounds for x in r["next"]]
    return {
        "chunks_per_s": n_chunks / statistics.median(r["chunk_wall"] for r in rounds),
        "chunk_cpu_ms": 1e3 * statistics.median(r["chunk_cpu"] for r in rounds) / n_chunks,
        "query_p50_ms": 1e3 * float(np.percentile(q_wall, 50)),
        "query_p95_ms": 1e3 * float(np.percentile(q_wall, 95)),
        "query_cpu_ms": 1e3 * float(np.median(q_cpu)),
        "next_p50_ms": 1e3 * float(np.percentile(nxt, 50)),
        "next_p95_ms": 1e3 * float(np.percentile(nxt, 95)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=96)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", dest="json_path", type=Path)
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    res = run(args.chunks, args.queries, args.rounds)
    load1 = os.getloadavg()[0]
    ref = next(iter(res.values()))
    print(f"\n{args.chunks} chunks, {args.queries} queries, {args.rounds} rounds interleaved; ")
    print(f"load {load0:.1f} → {load1:.1f}; ratios against the first row\n")
    print(
        "| config | chunks/s | × | CPU ms/chunk | query p50 ms | × | query p95 ms | "
        "CPU ms/query | next stage p50 ms | next p95 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in res.items():
        print(
            f"| {name} | {m['chunks_per_s']:.1f} | {m['chunks_per_s'] / ref['chunks_per_s']:.2f} "
            f"| {m['chunk_cpu_ms']:.1f} | {m['query_p50_ms']:.2f} "
            f"| {m['query_p50_ms'] / ref['query_p50_ms']:.2f} | {m['query_p95_ms']:.2f} "
            f"| {m['query_cpu_ms']:.2f} | {m['next_p50_ms']:.2f} | {m['next_p95_ms']:.2f} |"
        )
    if args.json_path:
        args.json_path.write_text(json.dumps({"load": [load0, load1], "configs": res}, indent=1))


if __name__ == "__main__":
    main()
