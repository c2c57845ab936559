"""The query path reads only the rows it returns, and returns what it returned before."""

from __future__ import annotations

from pathlib import Path

from edgerag import Engine


def _ingested(engine: Engine, docs: Path) -> list[int]:
    report = engine.ingest(sorted(docs.iterdir()))
    assert report.ok, report.errors
    return [r[0] for r in engine.store._reader.execute("SELECT key FROM items ORDER BY key")]


def test_top_k_hydration_equals_hydrating_every_candidate(engine: Engine, docs: Path) -> None:
    keys = _ingested(engine, docs)
    missing = [max(keys) + 1000 + i for i in range(4)]  # deleted after ranking, say
    # gone rows first, between and after the live ones: every position of a skip is exercised
    fused = [(missing[0], 0.9), (keys[0], 0.8), (missing[1], 0.7), (missing[2], 0.65)]
    fused += [(key, 0.5 - i * 0.01) for i, key in enumerate(keys[1:])] + [(missing[3], 0.1)]
    rankings = {"dense": fused, "bm25": list(reversed(fused))}
    retriever = engine.retriever
    for k in range(1, len(fused) + 2):
        everything = retriever._hydrate(fused, rankings, "fused")[:k]
        top = retriever._hydrate_top(fused, rankings, "fused", k)
        assert [h.to_dict() for h in top] == [h.to_dict() for h in everything], k
    assert len(retriever._hydrate_top(fused, rankings, "fused", len(keys))) == len(keys)


def test_hybrid_search_reads_k_rows_not_every_candidate(engine: Engine, docs: Path) -> None:
    _ingested(engine, docs)
    asked: list[int] = []
    items = engine.store.items

    def counting(keys: list[int]) -> dict:
        asked.extend(keys)
        return items(keys)

    engine.store.items = counting  # type: ignore[method-assign]
    engine.cache.enabled = False
    response = engine.search("pump seal torque", k=1, mode="hybrid")
    assert len(response.hits) == 1
    assert len(asked) == 1, f"hydrated {len(asked)} rows for k=1"
    assert response.hits[0].doc_id.endswith("pump.md")


def test_bench_check_gates_the_text_ratios() -> None:
    import copy
    import json
    import sys

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        import bench_check
    finally:
        sys.path.remove(str(bench))
    base = json.loads((bench / "baseline.json").read_text())
    assert bench_check.compare(copy.deepcopy(base), base, 0.2) == []
    for ratio in bench_check.TEXT_RATIOS:
        slower = copy.deepcopy(base)
        slower["text"]["ratios"][ratio] *= 1.3
        problems = bench_check.compare(slower, base, 0.2)
        assert len(problems) == 1 and problems[0].startswith(ratio), problems
    moved = copy.deepcopy(base)
    moved["text"]["params"]["chunks"] += 1
    assert "re-record" in bench_check.compare(moved, base, 0.2)[0]


def test_lexical_lists_run_while_the_question_is_encoded(
    engine: Engine, docs: Path, monkeypatch
) -> None:
    """A text-only question's BM25 and entity lists start on a worker before encoding and rank
    exactly as when they run after the ANN search (every worker busy: the inline path)."""
    import threading

    from edgerag.retrieval import pipeline

    _ingested(engine, docs)
    engine.cache.enabled = False
    where: list[str] = []
    lexical_search = engine.lexical.search

    def recording(*args, **kwargs):
        where.append(threading.current_thread().name)
        return lexical_search(*args, **kwargs)

    monkeypatch.setattr(engine.lexical, "search", recording)
    questions = [
        ("what does alarm E-107 mean", "hybrid", None),  # an entity list too
        ("pump seal torque", "hybrid", None),
        ("bearing grease hours", "bm25", None),
        ("discharge pressure", "hybrid", {"doc_id": str(docs / "alarms.txt")}),
    ]
    ahead = [engine.search(q, k=3, mode=m, filters=f) for q, m, f in questions]
    assert all(name.startswith("edgerag-lexical") for name in where), where
    assert "entity" in ahead[0].plan and "bm25" in ahead[2].plan

    busy = threading.BoundedSemaphore(1)
    busy.acquire()
    monkeypatch.setattr(pipeline, "_ahead_free", busy)
    where.clear()
    inline = [engine.search(q, k=3, mode=m, filters=f) for q, m, f in questions]
    assert where == [threading.current_thread().name] * len(questions)
    for a, b in zip(ahead, inline, strict=True):
        assert a.plan == b.plan
        assert [h.to_dict() for h in a.hits] == [h.to_dict() for h in b.hits]
    assert ahead[0].hits[0].doc_id.endswith("alarms.txt")
    assert {h.doc_id for h in ahead[3].hits} == {str(docs / "alarms.txt")}  # the filter held


def test_a_photo_or_clip_question_ranks_its_words_after_encoding(engine: Engine) -> None:
    from edgerag.retrieval.pipeline import Retriever
    from edgerag.types import Query

    retriever = Retriever(engine)
    photo = Query(text="pump", image=b"not read here")
    assert retriever._lexical_ahead(photo, "hybrid", "early", 10, None, None) is None
    assert retriever._lexical_ahead(Query(text="pump"), "hybrid", "late", 10, None, None) is None
    assert retriever._lexical_ahead(Query(text="the of"), "hybrid", "early", 10, None, None) is None
    assert retriever._lexical_ahead(Query(text="pump"), "dense", "early", 10, None, None) is None
    started = retriever._lexical_ahead(Query(text="pump"), "hybrid", "early", 10, None, None)
    assert started is not None and started[0] == "pump"
    assert started[1].result() == {"bm25": []}  # nothing ingested


def test_a_failed_search_waits_for_its_lexical_worker(
    engine: Engine, docs: Path, monkeypatch
) -> None:
    """The lists started ahead are settled before a search returns or raises: a worker still
    reading the store when its engine closes crashed the process (SQLite connection closed
    under it)."""
    import time

    import pytest

    from edgerag.errors import ConfigError
    from edgerag.types import Query

    _ingested(engine, docs)
    engine.cache.enabled = False
    started: list[bool] = []
    finished: list[bool] = []
    lexical_search = engine.lexical.search

    def slow(*args, **kwargs):
        started.append(True)
        time.sleep(0.3)
        result = lexical_search(*args, **kwargs)
        finished.append(True)
        return result

    monkeypatch.setattr(engine.lexical, "search", slow)
    for _ in range(5):  # the worker may or may not have picked the lists up before the error
        with pytest.raises(ConfigError, match="unknown query weights"):
            engine.search(Query(text="pump seal", weights={"smell": 1.0}))
        assert started == finished  # cancelled before it began, or waited for: never running
    time.sleep(0.4)
    assert started == finished  # and nothing started afterwards
