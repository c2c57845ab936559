"""BM25 engines on the same store and the same questions: SQLite FTS5, Tantivy, bm25s.

The store is ``benchmarks/answer_bench.py``'s 100k collection (perlfaq + Zaragoza FAQ answers
padded with WordNet glosses; built once in ``--cache-dir``, the padding's vectors do not matter
here). Every perlfaq/Zaragoza question is asked as edgerag turns it into a BM25 query (its
distinct non-stopword terms, OR-ed) and each engine returns its top ``--k``:

* ``fts5 bm25()``: what ``EngineConfig(lexical="fts5")`` runs (``ORDER BY -bm25() LIMIT``);
* ``fts5 rank``: FTS5's own ``ORDER BY rank`` form (documented as the faster one);
* ``tantivy``: ``edgerag.lexical.tantivy.TantivyLexical`` (the default), through the class the
  engine uses, key lookup included;
* ``bm25s``: bm25s at its README's settings (Snowball English stemmer via PyStemmer, English
  stopwords, ``method="lucene"``), one thread.

Reported per engine: build time, query p50/p95/max, BM25-alone R@1 per set (the top hit is the
answer's document) and how many of FTS5's top 10 it returns in its own top 10; then filtered
queries (four filter shapes, every 4th question) through both.

    python benchmarks/bm25_bench.py                  # 100k
    python benchmarks/bm25_bench.py --n 20000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import answer_bench  # noqa: E402

Ranker = Callable[[str], list[int]]


def measure(name: str, rank: Ranker, qas: list, rows: dict, reference: list | None) -> list:
    for qa in qas[:20]:  # warm-up: page cache, statement cache
        rank(qa.question)
    times, tops, hits = [], [], {}
    for qa in qas:
        t0 = time.perf_counter()
        keys = rank(qa.question)
        times.append((time.perf_counter() - t0) * 1e3)
        tops.append(keys[:10])
        top = rows.get(keys[0]) if keys else None
        ok = top is not None and answer_bench.relevant(qa, {"doc_id": top[0], "text": top[1]})
        hits.setdefault(qa.set, []).append(int(ok))
    overlap = (
        np.mean(
            [len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(tops, reference, strict=True)]
        )
        if reference is not None
        else 1.0
    )
    r1 = " | ".join(f"{np.mean(v):.3f}" for v in hits.values())
    print(
        f"| {name} | {np.percentile(times, 50):.2f} | {np.percentile(times, 95):.2f} | "
        f"{max(times):.1f} | {r1} | {overlap:.3f} |",
        flush=True,
    )
    return tops


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="items in the collection")
    parser.add_argument("--k", type=int, default=50, help="hits per query (edgerag's candidates)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache/edgerag-bench")
    parser.add_argument("--no-bm25s", action="store_true", help="skip the bm25s peer")
    args = parser.parse_args()

    from edgerag.lexical.fts5 import Fts5Lexical
    from edgerag.lexical.tantivy import TantivyLexical
    from edgerag.retrieval.text_query import STOPWORDS, fts_match, query_terms

    qas = answer_bench.load_perlfaq() + answer_bench.load_zaragoza()
    engine, info = answer_bench.open_collection(args.cache_dir, args.n, qas, False, "hashed")
    store = engine.store
    sql = "SELECT key, doc_id, text FROM items"
    rows = {r[0]: (r[1], r[2]) for r in store._reader.execute(sql)}
    sets = list(dict.fromkeys(qa.set for qa in qas))
    print(
        f"\n{len(rows):,} items, {len(qas)} questions, top {args.k}, load {os.getloadavg()[0]:.1f}"
    )
    print(f"\n| engine | p50 ms | p95 ms | max ms | R@1 {' | R@1 '.join(sets)} | top-10 ∩ FTS5 |")
    print("|---|---:|---:|---:|" + "---:|" * len(sets) + "---:|")

    fts5 = Fts5Lexical(store)
    reference = measure(
        "fts5 bm25()", lambda q: [k for k, _ in fts5.search(q, args.k)], qas, rows, None
    )
    rank_sql = "SELECT rowid FROM items_fts WHERE items_fts MATCH ? ORDER BY rank LIMIT ?"

    def fts5_rank(q: str) -> list[int]:
        match = fts_match(q)
        if not match:
            return []
        return [r[0] for r in store._reader.execute(rank_sql, (match, args.k))]

    measure("fts5 rank", fts5_rank, qas, rows, reference)

    before, t0 = rss_mb(), time.perf_counter()
    tantivy = TantivyLexical(store)
    tantivy.prepare()  # builds the index from the store
    built = time.perf_counter() - t0
    measure(
        "tantivy (edgerag default)",
        lambda q: [k for k, _ in tantivy.search(q, args.k)],
        qas,
        rows,
        reference,
    )
    notes = [f"tantivy: built in {built:.2f} s, peak RSS +{rss_mb() - before:.0f} MB"]

    if not args.no_bm25s:
        import bm25s
        import Stemmer

        keys = np.fromiter(rows, dtype=np.int64)
        stemmer = Stemmer.Stemmer("english")
        before, t0 = rss_mb(), time.perf_counter()
        corpus = bm25s.tokenize(
            [rows[k][1] for k in keys.tolist()],
            stopwords="en",
            stemmer=stemmer,
            show_progress=False,
        )
        retriever = bm25s.BM25(method="lucene")
        retriever.index(corpus, show_progress=False)
        built = time.perf_counter() - t0
        stop = sorted(STOPWORDS)

        def bm25s_rank(q: str) -> list[int]:
            terms = " ".join(query_terms(q))
            tokens = bm25s.tokenize(
                [terms], stopwords=stop, stemmer=stemmer, show_progress=False, return_ids=False
            )
            known = [[t for t in tokens[0] if t in retriever.vocab_dict]]
            if not known[0]:
                return []
            k = min(args.k, len(keys))
            ids, _ = retriever.retrieve(known, k=k, show_progress=False, n_threads=1)
            return keys[ids[0]].tolist()

        measure("bm25s", bm25s_rank, qas, rows, reference)
        notes.append(f"bm25s: built in {built:.2f} s, peak RSS +{rss_mb() - before:.0f} MB")
    print("\n" + "\n".join(notes))
    filtered_table(store, fts5, tantivy, qas[::4], args.k)
    engine.close()


# Filters over answer_bench's collection: its document ids and sources
FILTERS = {
    "perlfaq answers (~0.7 %)": {"source": "perlfaq*"},
    "Zaragoza answers (~0.5 %)": {"source": "zaragoza/*"},
    "5 WordNet documents (~10 %)": {"doc_id": [f"wordnet/{i:03d}" for i in range(5)]},
    "all WordNet glosses (~99 %)": {"source": "wordnet-3.0"},
}


def filtered_table(store: Any, fts5: Any, tantivy: Any, qas: list, k: int) -> None:
    """Filtered BM25, FTS5 (filter joined in SQL) vs Tantivy (same SQL-allowed keys, then
    post-filtered or a restricted match): p50 / p95 ms over every 4th question."""
    print("\n| filter | allowed keys | fts5 p50 / p95 ms | tantivy p50 / p95 ms |")
    print("|---|---:|---:|---:|")
    for name, filters in FILTERS.items():
        allowed = store.filter_keys(filters)
        cells = []
        for engine in (fts5, tantivy):
            times = []
            for qa in qas:
                t0 = time.perf_counter()
                engine.search(qa.question, k, filters, allowed)
                times.append((time.perf_counter() - t0) * 1e3)
            cells.append(f"{np.percentile(times, 50):.2f} / {np.percentile(times, 95):.2f}")
        print(f"| {name} | {len(allowed):,} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
