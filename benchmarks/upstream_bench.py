"""Upstream tiers: sink throughput per upstream, federated query latency vs local only, and the
trade-off of the ``auto`` scope's low-confidence rule.

Corpus: WordNet noun glosses (Debian ``wordnet-base``, real text), one document per gloss.
Each query is the first words of one gloss; its target is that gloss's document. After
shipping, retention evicts the older half of the documents from the edge (they stay upstream),
so half of the queries can only be answered through the upstream tier.

For each upstream (Qdrant local mode, Milvus Lite — the embedded modes):

* sink throughput: ``sync_once`` over the whole op log → ops/s and points/s;
* per scope (local, auto at several thresholds, all): hit@5 of the target for hot (still on
  the edge) and cold (evicted) queries, how often upstream was asked, and latency p50/p95.

    python benchmarks/upstream_bench.py --n 2000 --queries 200
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from edgerag import Engine, EngineConfig
from edgerag.bench.stats import percentile as pct
from edgerag.index.base import IndexConfig
from edgerag.upstream.base import UpstreamSpec, open_upstream
from edgerag.upstream.federated import federated_search
from edgerag.upstream.retention import RetentionPolicy, evict
from edgerag.upstream.sink import Sink
from edgerag.upstream.state import UpstreamState

WORDNET = Path("/usr/share/wordnet/data.noun")


def glosses(n: int) -> list[tuple[str, str]]:
    out = []
    for line in WORDNET.read_text(errors="replace").splitlines():
        if line.startswith(" ") or " | " not in line:
            continue
        fields, gloss = line.split(" | ", 1)
        lemma = fields.split()[4].replace("_", " ")
        gloss = gloss.split(";")[0].strip()
        if len(gloss.split()) >= 6:
            out.append((f"{fields.split()[0]}.txt", f"{lemma}: {gloss}"))
        if len(out) == n:
            return out
    return out


def run_scope(engine: Engine, upstream: Any, queries: list[tuple[str, str]], **kw: Any) -> dict:
    hits, asked, times = 0, 0, []
    for doc_id, text in queries:
        t0 = time.perf_counter()
        r = federated_search(engine, upstream, text, k=5, timeout_s=5.0, **kw)
        times.append((time.perf_counter() - t0) * 1000)
        hits += any(h.doc_id == doc_id for h in r.hits)
        asked += r.asked_upstream
    n = len(queries)
    return {"hit5": hits / n, "asked": asked / n, "p50": pct(times, 50), "p95": pct(times, 95)}


def build(base: Path, args: argparse.Namespace, corpus: list[tuple[str, str]]) -> float:
    """Ingest the corpus once; each upstream gets a copy (retention mutates it)."""
    config = EngineConfig(encoder=args.encoder, index=IndexConfig(backend="flat"))
    t0 = time.perf_counter()
    with Engine.open(base, config) as engine:
        for start in range(0, len(corpus), 100):
            engine.ingest([(d, t.encode()) for d, t in corpus[start : start + 100]])
    return time.perf_counter() - t0


def bench(
    kind: str,
    target: str,
    args: argparse.Namespace,
    corpus: list[tuple[str, str]],
    base: Path,
    ingest_s: float,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(base, Path(tmp) / "kb")
        engine = Engine.open(Path(tmp) / "kb")
        engine.cache.enabled = False  # measure searches, not the result cache
        state = UpstreamState(engine.store)
        spec = UpstreamSpec(kind, target.replace("{tmp}", tmp))
        state.add("default", spec)
        upstream = open_upstream(spec)
        sink = Sink(engine.store, upstream, state, batch=args.batch)
        t0 = time.perf_counter()
        ops = sink.sync_once()
        ship_s = time.perf_counter() - t0
        points = sum(engine.store.count_items().values())
        print(
            f"\n## {kind} ({spec.target.replace(tmp, '$TMP')}), {args.encoder} "
            f"{engine.encoder.dim}-d\n\ningest {len(corpus)} docs: {ingest_s:.1f} s; "
            f"sink: {ops} ops / {points} points in {ship_s:.2f} s = "
            f"**{ops / ship_s:.0f} ops/s, {points / ship_s:.0f} points/s** (batch {args.batch})"
        )
        created = sorted(d["created"] for d in engine.documents(limit=len(corpus)))
        cutoff = created[len(created) // 2]
        report = evict(
            engine, upstream, state, policy=RetentionPolicy(max_age_s={"text": 0}), now=cutoff
        )
        on_edge = {d["doc_id"] for d in engine.documents(limit=len(corpus))}
        print(f"evicted {len(report.evicted)} older documents to the cold tier")
        step = max(1, len(corpus) // args.queries)
        sample = [(d, " ".join(t.split(": ", 1)[1].split()[:6])) for d, t in corpus[::step]]
        hot = [q for q in sample if q[0] in on_edge]
        cold = [q for q in sample if q[0] not in on_edge]
        print(
            f"\n{len(hot)} hot + {len(cold)} cold queries, k=5\n\n"
            "| scope | hit@5 hot | hit@5 cold | asked upstream | p50 ms | p95 ms |\n"
            "|---|---|---|---|---|---|"
        )
        scopes: list[tuple[str, dict[str, Any]]] = [("local", {"scope": "local"})]
        scopes += [(f"auto ≥{t}", {"scope": "auto", "min_score": t}) for t in args.thresholds]
        scopes += [("all", {"scope": "all"}), ("upstream", {"scope": "upstream"})]
        for label, kw in scopes:
            h = run_scope(engine, upstream, hot, **kw)
            c = run_scope(engine, upstream, cold, **kw)
            both = hot + cold
            asked = (h["asked"] * len(hot) + c["asked"] * len(cold)) / len(both)
            lat = run_scope(engine, upstream, both, **kw)
            print(
                f"| {label} | {h['hit5']:.2f} | {c['hit5']:.2f} | {asked:.0%} | "
                f"{lat['p50']:.1f} | {lat['p95']:.1f} |"
            )
        upstream.close()
        state.close()
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="documents (WordNet glosses)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--encoder", default="minilm", choices=["minilm", "hash"])
    parser.add_argument("--batch", type=int, default=256, help="sink op-log rows per step")
    parser.add_argument("--thresholds", type=float, nargs="*", default=[0.5, 0.6, 0.7])
    parser.add_argument("--only", choices=["qdrant", "milvus"], help="one upstream")
    args = parser.parse_args()
    corpus = glosses(args.n)
    targets = {"qdrant": "{tmp}/qdrant", "milvus": "{tmp}/milvus.db"}
    with tempfile.TemporaryDirectory() as tmp:
        ingest_s = build(Path(tmp) / "base", args, corpus)
        for kind, target in targets.items():
            if args.only in (None, kind):
                bench(kind, target, args, corpus, Path(tmp) / "base", ingest_s)


if __name__ == "__main__":
    main()
