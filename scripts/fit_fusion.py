"""Fit the weighted score fusion on the dev splits; report R@1 per set and signal on test.

Sets (DATA.md; each split 50/50 into dev and test with a seeded shuffle):
  * perlfaq (Debian perl-doc) and Zaragoza (PyPI zaragoza-construction-faq): the question's
    own answer document is relevant; both sets' answers share one collection;
  * kx40 table/code questions (benchmarks/data/kx40_table_qa.jsonl) against the demo corpus: an
    item is relevant when it contains the gold fact.

Two weight vectors are fitted, one for questions that name an entity the collection knows (the
entity list is present) and one for the rest; each on a grid over the simplex (step 0.05),
maximising dev R@1 over those questions among the vectors not below the best single signal on
any set's dev split (if none is, the one losing least). The ranked lists are cached in
~/.cache/edgerag-bench/fit-records-SEED.json (--recollect to rank again). Written to
src/edgerag/retrieval/fusion_weights.json unless --dry-run.

    PYTHONPATH=src .venv/bin/python scripts/fit_fusion.py [--seed 16] [--dry-run]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path.home() / ".cache" / "edgerag-bench"
N_CANDIDATES = 50


def _bench():
    spec = importlib.util.spec_from_file_location(
        "answer_bench", ROOT / "benchmarks/answer_bench.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["answer_bench"] = module
    spec.loader.exec_module(module)
    return module


def split(items: list, seed: int) -> tuple[list, list]:
    order = list(items)
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    return order[:half], order[half:]


def collect(engine, questions: list[tuple[str, object]], relevant) -> list[dict]:
    """Per question: each signal's ranked (key, score) list and the relevant keys among them."""
    from edgerag.types import Query

    out = []
    for question, gold in questions:
        rankings = engine.retriever.rankings(Query(text=question), N_CANDIDATES)
        keys = {k for r in rankings.values() for k, _ in r}
        rows = engine.store.items(list(keys))
        rel = [k for k in keys if k in rows and relevant(rows[k], gold)]
        out.append({"rankings": rankings, "relevant": rel})
    return out


def r_at_1(records: list[dict], rank) -> float:
    hits = 0
    for rec in records:
        top = rank(rec["rankings"])
        hits += bool(top) and top[0][0] in set(rec["relevant"])
    return hits / len(records) if records else 0.0


def single(name: str):
    return lambda rankings: rankings.get(name, [])


def fused_with(weights: dict[str, float], with_entity: dict[str, float] | None = None):
    from edgerag.retrieval.fusion import FusionWeights, weighted_fusion

    fw = FusionWeights(weights, with_entity=with_entity)
    return lambda rankings: weighted_fusion(rankings, fw, limit=1)


def rrf(rankings):
    from edgerag.retrieval.fusion import reciprocal_rank_fusion

    return reciprocal_rank_fusion(list(rankings.values()), limit=1)


def grid(signals: list[str], step: float = 0.05):
    n = round(1 / step)
    for combo in itertools.product(range(n + 1), repeat=len(signals)):
        if sum(combo) == n:
            yield {s: c / n for s, c in zip(signals, combo, strict=True)}


def build_sets(bench, seed: int) -> dict[str, dict[str, list[dict]]]:
    from edgerag import Engine

    qa = bench.load_perlfaq() + bench.load_zaragoza()
    table = bench.load_table_set()
    sets: dict[str, dict[str, list[dict]]] = {}
    faq_db = CACHE / "fit-faq"
    with Engine.open(faq_db) as engine:
        if not engine.stats()["documents"]:
            engine.ingest([(q.name, q.answer.encode()) for q in qa])
        for name in ("perlfaq", "zaragoza"):
            dev, test = split([q for q in qa if q.set == name], seed)
            for part, items in (("dev", dev), ("test", test)):
                sets.setdefault(name, {})[part] = collect(
                    engine,
                    [(q.question, q.name) for q in items],
                    lambda row, gold: row["doc_id"] == gold,
                )
    with Engine.open(CACHE / "fit-demo") as engine:
        if not engine.stats()["documents"]:
            engine.ingest([ROOT / "demo" / "corpus"])
        dev, test = split(table, seed)
        for part, items in (("dev", dev), ("test", test)):
            sets.setdefault("kx40-tables", {})[part] = collect(
                engine,
                [(q.question, q.gold) for q in items],
                lambda row, gold: bench.contains_fact(row["text"], gold),
            )
    return sets


def _best(sets, signals, pick) -> dict[str, float]:
    """Grid weights maximising mean dev R@1 over the sets' questions selected by ``pick``,
    among those not below the best single signal on any set (else the one losing least)."""
    subsets = {n: [r for r in v["dev"] if pick(r)] for n, v in sets.items()}
    subsets = {n: recs for n, recs in subsets.items() if recs}
    best_single = {n: max(r_at_1(recs, single(s)) for s in signals) for n, recs in subsets.items()}
    chosen, chosen_key = None, None
    for weights in grid(signals):
        scores = {n: r_at_1(recs, fused_with(weights)) for n, recs in subsets.items()}
        margin = min(scores[n] - best_single[n] for n in subsets)
        # questions, not sets, weigh: a set with 3 entity questions must not outvote one with 26
        count = sum(len(recs) for recs in subsets.values())
        mean = sum(scores[n] * len(subsets[n]) for n in subsets) / count
        key = (min(margin, 0.0), mean, margin)
        if chosen_key is None or key > chosen_key:
            chosen, chosen_key = weights, key
    assert chosen is not None
    return chosen


def fit(sets) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """Two weight sets: for queries whose entity list is empty, and for those that name one."""
    signals = sorted({s for v in sets.values() for rec in v["dev"] for s in rec["rankings"]})
    plain = [s for s in signals if s != "entity"]
    without = _best(sets, plain, lambda r: not r["rankings"].get("entity"))
    with_entity = _best(sets, signals, lambda r: bool(r["rankings"].get("entity")))
    return without, with_entity, signals


def report(sets, weights, with_entity, signals: list[str]) -> str:
    cols = [*signals, "RRF", "fused (fitted)"]
    lines = [
        "| set | split | questions | " + " | ".join(f"R@1 {c}" for c in cols) + " |",
        "|---|---|---:|" + "---:|" * len(cols),
    ]
    for name, v in sets.items():
        for part in ("dev", "test"):
            recs = v[part]
            values = [r_at_1(recs, single(s)) for s in signals]
            values += [r_at_1(recs, rrf), r_at_1(recs, fused_with(weights, with_entity))]
            cells = " | ".join(f"{x:.3f}" for x in values)
            lines.append(f"| {name} | {part} | {len(recs)} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the JSON")
    parser.add_argument(
        "--recollect", action="store_true", help="rank the questions again (after re-ingest)"
    )
    args = parser.parse_args()
    t0 = time.perf_counter()
    bench = _bench()
    records = CACHE / f"fit-records-{args.seed}.json"
    if records.exists() and not args.recollect:
        sets = json.loads(records.read_text())
        for v in sets.values():  # JSON made the (key, score) pairs lists
            for rec in v["dev"] + v["test"]:
                rec["rankings"] = {n: [tuple(x) for x in r] for n, r in rec["rankings"].items()}
    else:
        sets = build_sets(bench, args.seed)
        records.write_text(json.dumps(sets))
    weights, with_entity, signals = fit(sets)
    print(
        f"signals: {signals}; fitted weights: {weights}; when the query names an entity: "
        f"{with_entity} ({time.perf_counter() - t0:.0f}s)"
    )
    print(report(sets, weights, with_entity, signals))
    if not args.dry_run:
        from edgerag.retrieval.fusion import WEIGHTS_FILE, FusionWeights

        sizes = ", ".join(f"{n} {len(v['dev'])}" for n, v in sets.items())
        fw = FusionWeights(
            weights,
            0.0,
            f"scripts/fit_fusion.py --seed {args.seed}: dev splits ({sizes})",
            with_entity,
        )
        WEIGHTS_FILE.write_text(fw.to_json() + "\n")
        print(f"wrote {WEIGHTS_FILE}")


if __name__ == "__main__":
    main()
