"""Text query → ranked sources and → cited answer at 100k items: where each millisecond goes.

Uses the collection of ``benchmarks/answer_bench.py`` (perlfaq + Zaragoza FAQ answers padded
with WordNet glosses to ``--n`` items, built once in ``--cache-dir`` and reused) and asks every
perlfaq/Zaragoza question through ``Engine.search`` (hybrid, early fusion, k=5) with the result
cache off, then serialises the response as ``POST /search`` does. Reports per stage p50/p95
(encode, ANN, BM25, entity, fuse, hydrate, JSON, and "other": what no stage timer covers) and
hybrid R@1 per set (the top hit is the answer's document) — the number that must not move when
the path gets faster. Then the same questions through ``Engine.ask`` (extractive, cited) as
``POST /ask`` returns them: encode, search, rerank, prompt, compose, JSON. ``--profile`` adds a
cProfile of the sources loop (top functions by own time).

``--pad hashed`` builds the padding's vectors with ``answer_bench.TokenHashEncoder`` (a cheap
deterministic stand-in: MiniLM-encoding ~99k glosses takes ~40 CPU-minutes here) while the Q/A
answers and every query are MiniLM: the timings are the real path's, the padding's own
ranking is not MiniLM's (say so beside any number measured that way).

    python benchmarks/query_bench.py --n 100000
    python benchmarks/query_bench.py --n 100000 --pad hashed --limit 300
    python benchmarks/query_bench.py --n 100000 --profile --limit 200
    python benchmarks/query_bench.py --n 100000 --pad hashed --limit 300 --lexical fts5
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import answer_bench  # noqa: E402

STAGES = ("encode", "ann", "bm25", "entity", "fuse", "hydrate", "json", "other", "total")
# CPU profile: the function whose cumulative time is each stage (file suffix, function name)
PROFILE_STAGES = {
    "encode": ("retrieval/query.py", "encode_query"),
    "ann": ("index/space.py", "search"),
    "bm25": ("store/sqlite.py", "bm25"),
    "entity": ("store/sqlite.py", "entity_hits"),
    "fuse": ("retrieval/pipeline.py", "_fuse"),
    "hydrate": ("retrieval/pipeline.py", "_hydrate"),
    "json": ("starlette/responses.py", "render"),
    "total": ("edgerag/engine.py", "search"),
}


def cpu_by_stage(stats: pstats.Stats, calls: int) -> dict[str, float]:
    """CPU ms per query of each stage: cumulative process time of its function. On a loaded
    machine wall-clock stages mostly measure waiting for a core; CPU time does not."""
    out = {}
    for stage, (suffix, func) in PROFILE_STAGES.items():
        total = 0.0
        for (file, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            if name == func and file.endswith(suffix):
                total = max(total, ct)
        out[stage] = total * 1e3 / calls
    return out


def search_all(engine: Any, qas: list[Any], k: int) -> tuple[dict[str, list[float]], dict]:
    """Every question once, timed per stage; R@1 per set from the response's top hit."""
    from edgerag.server.routes.query import JSONResponse

    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    quality: dict[str, list[int]] = {}
    for qa in qas:
        engine.cache.memo.clear()  # every question pays for its own encode
        t0 = time.perf_counter()
        response = engine.search(qa.question, k=k, mode="hybrid")
        t1 = time.perf_counter()
        JSONResponse(response.to_dict())  # what the /search route returns
        t2 = time.perf_counter()
        timings = response.timings_ms
        for stage in STAGES[:6]:
            stages[stage].append(timings.get(stage, 0.0))
        stages["json"].append((t2 - t1) * 1e3)
        covered = sum(timings.get(s, 0.0) for s in STAGES[:6])
        stages["other"].append((t1 - t0) * 1e3 - covered)
        stages["total"].append((t2 - t0) * 1e3)
        top = response.hits[0] if response.hits else None
        ok = top is not None and answer_bench.relevant(qa, {"doc_id": top.doc_id, "text": top.text})
        quality.setdefault(qa.set, []).append(int(ok))
    return stages, quality


ASK_STAGES = ("encode", "search", "rerank", "prompt", "compose", "json", "total")


def ask_all(engine: Any, qas: list[Any], k: int) -> tuple[dict[str, list[float]], dict]:
    """Every question through ``Engine.ask`` + the /ask route's JSON, timed per stage; the
    share of answers containing the gold sentence per set."""
    from edgerag.server.routes.query import JSONResponse

    stages: dict[str, list[float]] = {s: [] for s in ASK_STAGES}
    gold: dict[str, list[int]] = {}
    for qa in qas:
        engine.cache.memo.clear()
        t0 = time.perf_counter()
        answer = engine.ask(qa.question, k=k)
        t1 = time.perf_counter()
        JSONResponse(answer.to_dict())
        t2 = time.perf_counter()
        st, tm = answer.stages_ms, answer.timings_ms
        for stage, value in (
            ("encode", st["encode"]),
            ("search", st["search"]),
            ("rerank", tm["rerank"]),
            ("prompt", st["prompt"]),
            ("compose", tm["generate"]),
            ("json", (t2 - t1) * 1e3),
            ("total", (t2 - t0) * 1e3),
        ):
            stages[stage].append(value)
        gold.setdefault(qa.set, []).append(int(answer_bench.gold_in(qa, answer.answer)))
    return stages, gold


def table(stages: dict[str, list[float]], out: dict[str, Any], title: str) -> None:
    print(f"\n{title}\n\n| stage | p50 ms | p95 ms | mean ms |\n|---|---:|---:|---:|")
    for stage, values in stages.items():
        v = np.asarray(values)
        p50, p95, mean = np.percentile(v, 50), np.percentile(v, 95), v.mean()
        out[stage] = {"p50": round(p50, 3), "p95": round(p95, 3), "mean": round(mean, 3)}
        print(f"| {stage} | {p50:.2f} | {p95:.2f} | {mean:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="items in the collection")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache/edgerag-bench")
    parser.add_argument("--limit", type=int, default=0, help="ask N questions spread evenly")
    parser.add_argument("--profile", action="store_true", help="cProfile the timed loop")
    parser.add_argument("--json", dest="json_path", type=Path, help="write the numbers here")
    parser.add_argument(
        "--pad", choices=("minilm", "hashed"), default="minilm", help="padding vectors (above)"
    )
    parser.add_argument("--no-ask", action="store_true", help="skip the cited-answer path")
    parser.add_argument("--lexical", choices=("tantivy", "fts5"), help="BM25 engine to use")
    parser.add_argument(
        "--encoder",
        choices=("minilm", "minilm-q8"),
        default="minilm",
        help="text encoder of the collection and the questions (built once per encoder)",
    )
    parser.add_argument(
        "--lexical-after",
        action="store_true",
        help="rank BM25/entities after the ANN search, not while the question is encoded",
    )
    args = parser.parse_args()
    answer_bench.LEXICAL = args.lexical
    answer_bench.ENCODER = args.encoder
    if args.lexical_after:  # the path as it was before the lookups ran ahead
        from edgerag.retrieval.pipeline import Retriever

        Retriever._lexical_ahead = lambda *a, **k: None  # type: ignore[method-assign]
    qas = answer_bench.load_perlfaq() + answer_bench.load_zaragoza()
    engine, info = answer_bench.open_collection(args.cache_dir, args.n, qas, False, args.pad)
    questions = qas[:: max(1, len(qas) // args.limit)][: args.limit] if args.limit else qas
    try:
        for qa in questions[:20]:  # warm-up: page cache, onnxruntime arenas, statement cache
            engine.search(qa.question, k=args.k)
        # process_time: CPU of every thread (onnxruntime encodes on its own threads)
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        if profiler:
            profiler.enable()
        load0 = os.getloadavg()[0]
        stages, quality = search_all(engine, questions, args.k)
        if profiler:
            profiler.disable()
        load1 = os.getloadavg()[0]
        answers = None if args.no_ask else ask_all(engine, questions, args.k)
        load2 = os.getloadavg()[0]
    finally:
        engine.close()
    pad = info.get("pad", "minilm")
    n_items, n_q = info["items"], len(questions)
    lexical = engine.lexical.name
    print(
        f"\n{n_items:,} items (padding vectors: {pad}), {n_q} questions, k={args.k}, "
        f"BM25: {lexical}{' after ANN' if args.lexical_after else ' during encoding'}"
    )
    out: dict[str, Any] = {"items": info["items"], "pad": pad, "questions": len(questions)}
    out["lexical"] = lexical
    out["lexical_during_encode"] = not args.lexical_after
    out["load"] = [round(x, 2) for x in (load0, load1, load2)]
    out["sources"] = {}
    table(stages, out["sources"], f"query → ranked sources (load {load0:.1f} → {load1:.1f})")
    print("\n| set | questions | hybrid R@1 |")
    print("|---|---:|---:|")
    out["r_at_1"] = {}
    for name, hits in quality.items():
        out["r_at_1"][name] = round(sum(hits) / len(hits), 4)
        print(f"| {name} | {len(hits)} | {sum(hits) / len(hits):.3f} |")
    if answers is not None:
        out["answer"] = {}
        table(answers[0], out["answer"], f"query → cited answer (load {load1:.1f} → {load2:.1f})")
        print("\n| set | questions | gold sentence in the answer |\n|---|---:|---:|")
        out["gold"] = {}
        for name, hits in answers[1].items():
            out["gold"][name] = round(sum(hits) / len(hits), 4)
            print(f"| {name} | {len(hits)} | {sum(hits) / len(hits):.3f} |")
    if profiler:
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf)
        cpu = cpu_by_stage(stats, len(questions))
        out["cpu_ms_per_query"] = {k: round(v, 3) for k, v in cpu.items()}
        print("\nCPU ms per query by stage (cProfile, process time; profiler overhead included):")
        print("| stage | CPU ms | share of total |")
        print("|---|---:|---:|")
        for stage, ms in cpu.items():
            print(f"| {stage} | {ms:.2f} | {ms / cpu['total'] * 100:.0f} % |")
        stats.sort_stats("tottime").print_stats(25)
        print("\ncProfile, top 25 by own CPU time:\n" + buf.getvalue())
    if args.json_path:
        args.json_path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
