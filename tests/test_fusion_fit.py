"""Fitted weighted fusion: shipped weights and their per-query rules load, the choice of weights
follows the query's features as fitted, fused ranking not below the best single signal on a real
fixture, RRF still available as a mode."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from edgerag import Engine, EngineConfig
from edgerag.errors import ConfigError
from edgerag.retrieval.fusion import (
    WEIGHTS_FILE,
    FusionWeights,
    Rule,
    default_weights,
    normalise,
    query_features,
    weighted_fusion,
)
from edgerag.types import Query

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("answer_bench", ROOT / "benchmarks/answer_bench.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("answer_bench", bench)
_spec.loader.exec_module(bench)


def test_shipped_weights_load_and_name_their_fit():
    weights = default_weights()
    assert {"dense", "bm25"} <= set(weights.weights)
    assert all(w >= 0 for w in weights.weights.values()) and sum(weights.weights.values()) > 0
    assert "fit_fusion.py" in weights.fitted_on
    raw = json.loads(WEIGHTS_FILE.read_text())
    assert raw["weights"] == weights.weights
    assert [(r["when"], r["at_least"], r["weights"]) for r in raw["rules"]] == [
        (r.feature, r.at_least, r.weights) for r in weights.rules
    ]
    assert weights.rules and weights.rules[0].feature == "entity"  # entity questions first


def test_bad_weight_files_are_refused(tmp_path):
    bad = tmp_path / "w.json"
    bad.write_text('{"weights": {"dense": -1}}')
    with pytest.raises(ValueError, match="non-negative"):
        FusionWeights.load(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not a fusion weights file"):
        FusionWeights.load(bad)
    bad.write_text(
        '{"weights": {"dense": 1}, "rules": [{"when": "moon", "at_least": 1, '
        '"weights": {"bm25": 1}}]}'
    )
    with pytest.raises(ValueError, match="unknown rule feature.*moon"):
        FusionWeights.load(bad)
    bad.write_text('{"weights": {"dense": 1}, "rules": [{"when": "entity", "weights": {}}]}')
    with pytest.raises(ValueError, match="not a fusion weights file"):
        FusionWeights.load(bad)


def test_the_format_before_rules_still_loads(tmp_path):
    old = tmp_path / "w.json"
    old.write_text('{"weights": {"dense": 0.7, "bm25": 0.3}, "with_entity": {"entity": 1}}')
    weights = FusionWeights.load(old)
    assert weights.rules == (Rule("entity", 1.0, {"entity": 1.0}),)


def test_query_features_read_the_lists():
    rankings = {"dense": [(1, 0.80), (2, 0.75)], "bm25": [(2, 10.0), (1, 6.0)]}
    assert query_features(rankings) == pytest.approx(
        {"entity": 0.0, "bm25_gap": 0.4, "dense_gap": 0.05}
    )
    lone = query_features({"bm25": [(3, 2.0)], "entity": [(3, 1.0)]})
    assert lone == {"entity": 1.0, "bm25_gap": 1.0, "dense_gap": 0.0}
    assert query_features({"bm25": [(1, 0.0), (2, 0.0)]})["bm25_gap"] == 0.0


def test_shipped_decision_picks_the_fitted_weights_by_feature():
    """Each rule of the shipped file is taken at its threshold, and not just below it."""
    weights = default_weights()
    plain = {"entity": 0.0, "bm25_gap": 0.0, "dense_gap": 0.0}
    assert weights.table(plain) == weights.weights
    for i, rule in enumerate(weights.rules):
        earlier = {r.feature for r in weights.rules[:i]}
        assert rule.feature not in earlier
        at = {**plain, rule.feature: rule.at_least}
        assert weights.table(at) == rule.weights
        below = {**plain, rule.feature: rule.at_least - 1e-6}
        assert weights.table(below) != rule.weights


def test_weighted_fusion_normalises_each_list():
    assert normalise([(1, 9.0), (2, 5.0), (3, 1.0)]) == {1: 1.0, 2: 0.5, 3: 0.0}
    rankings = {"dense": [(1, 0.8), (2, 0.7)], "bm25": [(2, 12.0), (3, 2.0)]}
    fused = weighted_fusion(rankings, FusionWeights({"dense": 0.25, "bm25": 0.75}))
    # 2: .25*0 + .75*1 = .75; 1: .25*1 = .25; 3: 0
    assert [k for k, _ in fused] == [2, 1, 3]
    assert fused[0][1] == pytest.approx(0.75)
    only_dense = weighted_fusion(rankings, FusionWeights({"dense": 1.0}))
    assert [k for k, _ in only_dense][:2] == [1, 2] and {k for k, _ in only_dense} == {1, 2, 3}


def test_entity_questions_use_their_own_weights():
    weights = FusionWeights(
        {"dense": 1.0, "bm25": 0.0}, rules=(Rule("entity", 1.0, {"dense": 0.0, "bm25": 1.0}),)
    )
    plain = {"dense": [(1, 0.9), (2, 0.1)], "bm25": [(2, 5.0), (1, 1.0)]}
    assert weighted_fusion(plain, weights)[0][0] == 1
    named = {**plain, "entity": [(2, 1.0)]}
    assert weighted_fusion(named, weights)[0][0] == 2


def test_a_confident_bm25_list_gets_its_fitted_say():
    """Constructed case: dense prefers 1 narrowly, BM25 prefers 2. With BM25's top hit clear of
    its second (gap 0.5 >= 0.3) the rule's weights apply and 2 wins; with the same two lists
    but a close BM25 second (gap 0.1) the prose weights keep dense's choice."""
    weights = FusionWeights(
        {"dense": 0.9, "bm25": 0.1},
        rules=(
            Rule("entity", 1.0, {"bm25": 1.0}),
            Rule("bm25_gap", 0.3, {"dense": 0.5, "bm25": 0.5}),
        ),
    )
    dense = [(1, 0.70), (2, 0.60), (3, 0.40)]  # min-max: 1 -> 1, 2 -> 2/3, 3 -> 0
    clear = {"dense": dense, "bm25": [(2, 10.0), (3, 5.0), (1, 1.0)]}
    close = {"dense": dense, "bm25": [(2, 10.0), (3, 9.0), (1, 1.0)]}
    # clear: 2 = .5 * 2/3 + .5 * 1 = .833; 1 = .5 * 1 + .5 * 0 = .5
    assert weighted_fusion(clear, weights)[:2] == [
        (2, pytest.approx(0.5 * 2 / 3 + 0.5)),
        (1, pytest.approx(0.5)),
    ]
    # close: 1 = .9 * 1 + .1 * 0 = .9; 2 = .9 * 2/3 + .1 * 1 = .7
    assert weighted_fusion(close, weights)[:2] == [
        (1, pytest.approx(0.9)),
        (2, pytest.approx(0.9 * 2 / 3 + 0.1)),
    ]


def test_fusion_is_deterministic():
    """The same lists give the same order and scores, whatever the dict order and run; ties
    go to the lower key."""
    rankings = {
        "dense": [(5, 0.6), (3, 0.6), (9, 0.2)],
        "bm25": [(9, 4.0), (5, 2.0), (3, 2.0)],
        "entity": [(3, 1.0)],
    }
    weights = default_weights()
    first = weighted_fusion(rankings, weights)
    reordered = dict(reversed(list(rankings.items())))
    assert all(weighted_fusion(reordered, weights) == first for _ in range(3))
    tie = weighted_fusion({"dense": [(7, 0.5), (4, 0.5)]}, FusionWeights({"dense": 1.0}))
    assert [k for k, _ in tie] == [4, 7]


@pytest.fixture(scope="module")
def demo_engine(tmp_path_factory):
    """The demo corpus (text documents) with the real MiniLM encoder."""
    path = tmp_path_factory.mktemp("fusion") / "db"
    with Engine.open(path) as eng:
        report = eng.ingest([ROOT / "demo" / "corpus"])
        assert report.ok, report.errors
        yield eng


def _r_at_1(engine, questions, rank) -> float:
    hits = 0
    for qa in questions:
        rankings = engine.retriever.rankings(Query(text=qa.question), 50)
        top = rank(rankings)
        rows = engine.store.items([top[0][0]]) if top else {}
        hits += bool(top) and bench.contains_fact(rows[top[0][0]]["text"], qa.gold)
    return hits / len(questions)


def test_fused_is_not_below_the_best_single_signal(demo_engine):
    """Real fixture: the kx40 table/code questions against the demo corpus."""
    questions = bench.load_table_set()
    weights = default_weights()
    singles = {
        name: _r_at_1(demo_engine, questions, lambda r, n=name: r.get(n, []))
        for name in ("dense", "bm25", "entity")
    }
    fused = _r_at_1(demo_engine, questions, lambda r: weighted_fusion(r, weights, limit=1))
    print(f"\nR@1 {singles} fused {fused:.3f} (n={len(questions)})")
    assert fused >= max(singles.values())


def test_rrf_stays_available_as_a_mode(tmp_path, docs):
    with Engine.open(tmp_path / "rrf", EngineConfig(encoder="hash", rank_fusion="rrf")) as eng:
        eng.ingest([docs])
        hit = eng.search("E-107 discharge pressure", k=3).hits[0]
    assert "rrf" in hit.scores and "fused" not in hit.scores
    with pytest.raises(ConfigError, match="rank_fusion"):
        EngineConfig(rank_fusion="max")


def _fit_script():
    spec = importlib.util.spec_from_file_location("fit_fusion", ROOT / "scripts/fit_fusion.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(right: str, wrong: str, entity: bool, n: int) -> dict:
    """One constructed question: ``right``'s top hit (key 1) is relevant, ``wrong``'s (key 2)
    is not; each list also ranks the other's top second, by a varying margin."""
    lists = {
        right: [(1, 1.0), (2, 0.9 - 0.01 * n), (3 + n, 0.1)],
        wrong: [(2, 1.0), (1, 0.95 - 0.02 * n), (3 + n, 0.2)],
    }
    if entity:  # names an entity both top hits carry: the class, not the answer
        lists["entity"] = [(1, 2.0), (2, 2.0)]
    return {"question": f"q{n}", "rankings": lists, "relevant": [1]}


def test_the_fitter_learns_which_signal_each_query_class_trusts():
    """Constructed dev sets: prose questions answered by dense, entity questions by BM25. The
    fitted decision sends entity questions to BM25-leaning weights and the rest to dense."""
    fit = _fit_script()
    prose = [_record("dense", "bm25", False, n) for n in range(12)]
    codes = [_record("bm25", "dense", True, n) for n in range(8)]
    sets = {"prose": {"dev": prose, "test": prose}, "codes": {"dev": codes, "test": codes}}
    weights, signals, _ = fit.fit(sets)
    assert signals == ["bm25", "dense", "entity"]
    assert weights.rules[0].feature == "entity"
    assert weights.rules[0].weights["bm25"] > weights.rules[0].weights.get("dense", 0)
    assert weights.weights["dense"] > weights.weights.get("bm25", 0)
    for name, v in sets.items():  # fused answers every constructed dev question
        assert fit.r_at_1(v["dev"], fit.fused_with(weights)) == 1.0, name
    assert fit.fit(sets)[0] == weights  # deterministic
