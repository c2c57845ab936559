"""Fit the weighted score fusion on the dev splits; report R@1 per set and signal on test.

Sets (DATA.md; each split 50/50 into dev and test with a seeded shuffle):
  * perlfaq (Debian perl-doc) and Zaragoza (PyPI zaragoza-construction-faq): the question's
    own answer document is relevant; both sets' answers share one collection;
  * kx40 table/code questions (benchmarks/data/kx40_table_qa.jsonl) against the demo corpus: an
    item is relevant when it contains the gold fact.

The fusion adapts per query (retrieval/fusion.py ``FusionWeights``): a small decision on
features of the query's own ranked lists picks one of 2-3 weight vectors — whether the query
names an entity the collection knows, then whether a list's top hit stands clear of its second
(``bm25_gap`` or ``dense_gap`` at least a threshold). Candidate decisions: the entity rule
alone, or it plus one gap rule at a dev quantile of that gap. Each decision's weight vectors
are fitted by coordinate ascent over grids (entity class: the simplex of all signals, step
0.05; the others: dense/BM25 shares, step 0.02). Objective, for the weights and the choice of
decision alike, on the dev splits only (see ``_objective``): no set below its best single
signal (the shortfall in questions of the worst set), then bootstrap robustness of that, then
the mean over the sets of R@1, then MRR@10, then the worst set's margin. The ranked lists are
cached in $EDGERAG_BENCH_CACHE (default ~/.cache/edgerag-bench)/fit-records-SEED.json
(--recollect to rank again). Written to src/edgerag/retrieval/fusion_weights.json unless
--dry-run; the report compares it with the file it replaces ("fused before").

    PYTHONPATH=src .venv/bin/python scripts/fit_fusion.py [--seed 16] [--dry-run]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import itertools
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from edgerag.retrieval.fusion import FusionWeights, Rule

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("EDGERAG_BENCH_CACHE", Path.home() / ".cache" / "edgerag-bench"))
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
        out.append({"question": question, "rankings": rankings, "relevant": rel})
    return out


def r_at_1(records: list[dict], rank) -> float:
    hits = 0
    for rec in records:
        top = rank(rec["rankings"])
        hits += bool(top) and top[0][0] in set(rec["relevant"])
    return hits / len(records) if records else 0.0


def single(name: str):
    return lambda rankings: rankings.get(name, [])


def fused_with(weights):
    from edgerag.retrieval.fusion import weighted_fusion

    return lambda rankings: weighted_fusion(rankings, weights, limit=1)


def rrf(rankings):
    from edgerag.retrieval.fusion import reciprocal_rank_fusion

    return reciprocal_rank_fusion(list(rankings.values()), limit=1)


def grid(signals: list[str], step: float) -> np.ndarray:
    """Weight vectors over ``signals`` on the simplex, one per row."""
    n = round(1 / step)
    rows = [c for c in itertools.product(range(n + 1), repeat=len(signals)) if sum(c) == n]
    return np.array(rows, dtype=float) / n


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


class Question:
    """One dev/test question as the fitter needs it: the candidates' normalised scores per signal
    (the same min-max as ``weighted_fusion``), which candidates are relevant, the query features."""

    def __init__(self, rec: dict, signals: list[str]) -> None:
        from edgerag.retrieval.fusion import normalise, query_features

        rankings = rec["rankings"]
        keys = sorted({k for r in rankings.values() for k, _ in r})  # argmax ties → lowest key
        column = {k: i for i, k in enumerate(keys)}
        self.scores = np.zeros((len(signals), len(keys)))
        for row, name in enumerate(signals):
            for key, value in normalise(rankings.get(name, [])).items():
                self.scores[row, column[key]] = value
        relevant = set(rec["relevant"])
        self.relevant = np.array([k in relevant for k in keys], dtype=bool)
        self.features = query_features(rankings)
        self.single = np.array(
            [bool(rankings.get(n)) and rankings[n][0][0] in relevant for n in signals]
        )
        self._hits: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def hits(self, weights: np.ndarray) -> np.ndarray:
        """Top-1 relevant (0/1) under each weight vector (row) of ``weights``."""
        return self.ranked(weights)[0]

    def reciprocal_rank(self, weights: np.ndarray) -> np.ndarray:
        """1 / rank of the first relevant candidate (0 below rank 10) per weight vector."""
        return self.ranked(weights)[1]

    def ranked(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if id(weights) not in self._hits:
            if not self.relevant.any():
                self._hits[id(weights)] = (np.zeros(len(weights)), np.zeros(len(weights)))
            else:
                fused = weights @ self.scores  # weight vectors × candidates
                top1 = self.relevant[np.argmax(fused, axis=1)].astype(float)
                best = np.where(self.relevant, fused, -np.inf).max(axis=1)
                rank = np.where(top1 > 0, 1, 1 + (fused > best[:, None]).sum(axis=1))
                self._hits[id(weights)] = (top1, np.where(rank <= 10, 1.0 / rank, 0.0))
        return self._hits[id(weights)]


def _class_of(rules: list[tuple[str, float]], features: dict[str, float]) -> int:
    return next((i for i, (f, t) in enumerate(rules) if features[f] >= t), len(rules))


def _objective(dev, fused: dict[str, np.ndarray], recip: dict[str, np.ndarray], draws=500, seed=0):
    """Per candidate (a column of each set's questions × candidates matrices: ``fused`` top-1
    relevant 0/1, ``recip`` reciprocal rank): (shortfall of the worst set in questions, clipped
    at 0; bootstrap robustness; mean set R@1; mean set MRR@10; worst margin).

    Robustness = the share of bootstrap resamples of the dev questions (per set) on which no
    set's fused R@1 is below its best single signal, rounded to 0.05: candidates whose mean R@1
    differs by a question are a coin toss on new questions, and this prefers the one that wins
    where the single signals win. MRR breaks the ties R@1 leaves (11 dev questions name an
    entity: 9 weight vectors tie on them)."""
    rng = np.random.default_rng(seed)
    ok = np.ones((draws, next(iter(fused.values())).shape[1]), dtype=bool)
    margins, means, mrr = [], [], []
    for name, qs in dev.items():
        single = np.stack([q.single for q in qs])  # questions × signals
        margins.append(fused[name].sum(0) - single.sum(0).max())
        means.append(fused[name].mean(0))
        mrr.append(recip[name].mean(0))
        draw = rng.integers(0, len(qs), size=(draws, len(qs)))
        resampled = np.stack([fused[name][d].sum(0) for d in draw])  # draws × candidates
        ok &= resampled >= single[draw].sum(1).max(1)[:, None]
    margin = np.min(np.stack(margins), axis=0)
    robust = np.round(ok.mean(0) * 20) / 20
    mean_mrr = np.round(np.mean(np.stack(mrr), axis=0), 6)  # float noise must not break ties
    return np.minimum(margin, 0), robust, np.mean(np.stack(means), axis=0), mean_mrr, margin


def _fit_rules(dev: dict[str, list[Question]], rules, grids, signals, rounds=3) -> list[int]:
    """Coordinate ascent: each class's weight vector in turn, the others held; a tie takes the
    middle of the tied vectors (deterministic, and away from a plateau's edge)."""
    classes = {n: [_class_of(rules, q.features) for q in qs] for n, qs in dev.items()}
    start = {"dense": 0.8, "bm25": 0.2}
    choice = [
        int(np.argmin(np.abs(g - [start.get(s, 0.0) for s in signals]).sum(1))) for g in grids
    ]
    for _ in range(rounds):
        for c, g in enumerate(grids):
            fused, recip = {}, {}
            for name, qs in dev.items():
                rows = [
                    q.ranked(g) if qc == c else _fixed(q, grids[qc], choice[qc], len(g))
                    for q, qc in zip(qs, classes[name], strict=True)
                ]
                fused[name] = np.stack([r[0] for r in rows])
                recip[name] = np.stack([r[1] for r in rows])
            keys = _objective(dev, fused, recip)
            order = np.lexsort(keys[::-1])  # last key is primary
            top = tuple(k[order[-1]] for k in keys)
            tied = [i for i in order if tuple(k[i] for k in keys) == top]
            choice[c] = int(sorted(tied)[len(tied) // 2])
    return choice


def _fixed(q: Question, g: np.ndarray, i: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A question of another class: its result under that class's chosen vector, n times."""
    top1, rr = q.ranked(g)
    return np.full(n, top1[i]), np.full(n, rr[i])


def _score(dev, rules, grids, choice) -> tuple[float, ...]:
    """The objective (see :func:`_objective`) of one fitted decision."""
    fused, recip = {}, {}
    for name, qs in dev.items():
        rows = [
            _fixed(q, grids[c], choice[c], 1) for q in qs for c in [_class_of(rules, q.features)]
        ]
        fused[name] = np.stack([r[0] for r in rows])
        recip[name] = np.stack([r[1] for r in rows])
    return tuple(float(k[0]) for k in _objective(dev, fused, recip))


def fit(sets) -> tuple[FusionWeights, list[str], list[str]]:
    """The decision (which rules) and its weight vectors with the best dev objective."""
    signals = sorted({s for v in sets.values() for rec in v["dev"] for s in rec["rankings"]})
    dev = {n: [Question(r, signals) for r in v["dev"]] for n, v in sets.items()}
    simplex = grid(signals, 0.05)
    shares = np.zeros((51, len(signals)))
    shares[:, signals.index("dense")] = np.linspace(0, 1, 51)
    shares[:, signals.index("bm25")] = 1 - np.linspace(0, 1, 51)
    candidates: list[list[tuple[str, float]]] = [[("entity", 1.0)]]
    for feature in ("bm25_gap", "dense_gap"):
        values = [
            q.features[feature] for qs in dev.values() for q in qs if not q.features["entity"]
        ]
        for quantile in (0.5, 0.6, 0.7, 0.8, 0.9):
            threshold = round(float(np.quantile(values, quantile)), 3)
            candidates.append([("entity", 1.0), (feature, threshold)])
    log, chosen, chosen_key = [], None, None
    for rules in candidates:
        grids = [simplex] + [shares] * len(rules)
        choice = _fit_rules(dev, rules, grids, signals)
        key = _score(dev, rules, grids, choice)
        tables = [
            dict(zip(signals, (round(float(x), 2) for x in g[i]), strict=True))
            for g, i in zip(grids, choice, strict=True)
        ]
        tables = [{k: v for k, v in t.items() if v} for t in tables]
        fw = FusionWeights(
            tables[-1], rules=tuple(Rule(f, t, w) for (f, t), w in zip(rules, tables, strict=False))
        )
        log.append(
            f"  {_describe(rules)}: dev shortfall {key[0]:.0f}, robust {key[1]:.2f}, "
            f"mean R@1 {key[2]:.3f}, MRR@10 {key[3]:.3f}, worst margin {key[4]:+.0f}"
        )
        if chosen_key is None or key > chosen_key:
            chosen, chosen_key = fw, key
    assert chosen is not None
    return chosen, signals, log


def _describe(rules: list[tuple[str, float]]) -> str:
    return " → ".join(f"{f} ≥ {t:g}" for f, t in rules) + " → else"


def report(sets, before: FusionWeights | None, after: FusionWeights, signals: list[str]) -> str:
    cols = [*signals, "RRF", "fused before", "fused now"]
    lines = [
        "| set | split | questions | " + " | ".join(f"R@1 {c}" for c in cols) + " |",
        "|---|---|---:|" + "---:|" * len(cols),
    ]
    for name, v in sets.items():
        for part in ("dev", "test"):
            recs = v[part]
            values = [r_at_1(recs, single(s)) for s in signals]
            values.append(r_at_1(recs, rrf))
            values.append(r_at_1(recs, fused_with(before)) if before else float("nan"))
            values.append(r_at_1(recs, fused_with(after)))
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
    from edgerag.retrieval.fusion import WEIGHTS_FILE

    try:
        before = FusionWeights.load(WEIGHTS_FILE)
    except ValueError:
        before = None
    fitted, signals, log = fit(sets)
    sizes = ", ".join(f"{n} {len(v['dev'])}" for n, v in sets.items())
    fitted = dataclasses.replace(
        fitted, fitted_on=f"scripts/fit_fusion.py --seed {args.seed}: dev splits ({sizes})"
    )
    print("candidate decisions (dev):")
    print("\n".join(log))
    print(f"chosen ({time.perf_counter() - t0:.0f}s):\n{fitted.to_json()}")
    print(report(sets, before, fitted, signals))
    if not args.dry_run:
        WEIGHTS_FILE.write_text(fitted.to_json() + "\n")
        print(f"wrote {WEIGHTS_FILE}")


if __name__ == "__main__":
    main()
