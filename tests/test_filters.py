"""Filters: SQL evaluation equals a brute force over the same rows; filtered search is exact."""

from __future__ import annotations

import random

import numpy as np
import pytest

from edgerag import Engine, EngineConfig
from edgerag.errors import ConfigError
from edgerag.index.base import IndexConfig
from edgerag.retrieval.filters import parse_cli_filters

SITES = ["plant-1", "plant-2", "plant-3"]
TAGS = ["pump", "seal", "valve", "motor"]


@pytest.fixture(scope="module")
def corpus():
    rng = random.Random(3)
    docs = []
    for i in range(120):
        meta = {
            "site": rng.choice(SITES),
            "tags": rng.sample(TAGS, rng.randint(0, 2)),
            "rev": rng.randint(1, 4),
        }
        words = " ".join(
            rng.choice(["pump", "seal", "valve", "bearing", "grease", "alarm"]) for _ in range(30)
        )
        docs.append((f"doc{i:03d}.txt", f"document {i} {words}", meta))
    config = EngineConfig(
        encoder="hash", index=IndexConfig(backend="faiss", quantization="int8", exact_threshold=10)
    )
    with Engine.open(":memory:", config) as engine:
        for name, text, meta in docs:
            assert engine.ingest([(name, text.encode())], metadata=meta).ok
        yield engine, docs


def _brute(docs, predicate):
    return {name for name, _, meta in docs if predicate(name, meta)}


CASES = [
    ({"site": "plant-2"}, lambda n, m: m["site"] == "plant-2"),
    ({"site": ["plant-1", "plant-3"]}, lambda n, m: m["site"] in ("plant-1", "plant-3")),
    ({"tags": "seal"}, lambda n, m: "seal" in m["tags"]),
    ({"tags": ["seal", "motor"]}, lambda n, m: bool({"seal", "motor"} & set(m["tags"]))),
    ({"rev": "3"}, lambda n, m: m["rev"] == 3),
    ({"rev": 3, "site": "plant-1"}, lambda n, m: m["rev"] == 3 and m["site"] == "plant-1"),
    ({"source": "doc00*"}, lambda n, m: n.startswith("doc00")),
    ({"doc_id": "doc007.txt"}, lambda n, m: n == "doc007.txt"),
    ({"modality": "text"}, lambda n, m: True),
    ({"modality": "image"}, lambda n, m: False),
]


@pytest.mark.parametrize("filters,predicate", CASES)
def test_filter_equals_brute_force(corpus, filters, predicate):
    engine, docs = corpus
    allowed = engine.store.filter_keys(filters)
    got = {r["doc_id"] for r in engine.store.items([int(k) for k in allowed]).values()}
    assert got == _brute(docs, predicate)


@pytest.mark.parametrize("filters,predicate", CASES)
@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_filtered_search_only_returns_allowed_and_dense_is_exact(corpus, filters, predicate, mode):
    engine, docs = corpus
    expected = _brute(docs, predicate)
    response = engine.search("pump seal bearing", k=10, filters=filters, mode=mode)
    assert {h.doc_id for h in response.hits} <= expected
    if mode == "dense" and expected:
        # The planner must not lose recall under a filter: compare with exact search.
        index = engine.indexes["text"]
        q = engine.encoder.encode(["pump seal bearing"])
        exact = index.exact_search(q, 10, engine.store.filter_keys(filters))
        want = [int(k) for k in exact.keys[0] if k >= 0]
        assert [h.key for h in response.hits] == want


def test_time_filters(corpus):
    engine, docs = corpus
    assert len(engine.store.filter_keys({"ingested_after": "2000-01-01"})) > 0
    assert len(engine.store.filter_keys({"ingested_before": "2000-01-01"})) == 0


def test_bad_filters_are_config_errors():
    with pytest.raises(ConfigError):
        parse_cli_filters(["novalue"])
    from edgerag.retrieval.filters import where_clause

    with pytest.raises(ConfigError):
        where_clause({"bad key;drop": 1})
    with pytest.raises(ConfigError):
        where_clause({"ingested_after": "yesterday-ish"})
    with pytest.raises(ConfigError, match="time_from"):
        where_clause({"time_from": "soon"})


def test_cli_filter_parsing():
    assert parse_cli_filters(["a=1", "b=x", "a=2"]) == {"a": ["1", "2"], "b": "x"}


def test_filter_cache_follows_writes(corpus):
    engine, _ = corpus
    before = len(engine.store.filter_keys({"site": "plant-9"}))
    assert before == 0
    assert engine.search("pump", filters={"site": "plant-9"}).hits == []
    engine.ingest([("extra.txt", b"pump pump pump")], metadata={"site": "plant-9"})
    assert [h.doc_id for h in engine.search("pump", filters={"site": "plant-9"}).hits] == [
        "extra.txt"
    ]
    engine.delete("extra.txt")
    assert np.all(engine.store.filter_keys({"site": "plant-9"}) == np.array([], dtype=np.int64))
