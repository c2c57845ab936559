"""Fitted weighted fusion: shipped weights load, fused ranking not below the best single signal
on a real fixture, RRF still available as a mode."""

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
    default_weights,
    normalise,
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


def test_bad_weight_files_are_refused(tmp_path):
    bad = tmp_path / "w.json"
    bad.write_text('{"weights": {"dense": -1}}')
    with pytest.raises(ValueError, match="non-negative"):
        FusionWeights.load(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not a fusion weights file"):
        FusionWeights.load(bad)


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
    weights = FusionWeights({"dense": 1.0, "bm25": 0.0}, with_entity={"dense": 0.0, "bm25": 1.0})
    plain = {"dense": [(1, 0.9), (2, 0.1)], "bm25": [(2, 5.0), (1, 1.0)]}
    assert weighted_fusion(plain, weights)[0][0] == 1
    named = {**plain, "entity": [(2, 1.0)]}
    assert weighted_fusion(named, weights)[0][0] == 2


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
