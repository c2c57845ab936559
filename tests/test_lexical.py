"""BM25 engines (edgerag.lexical): Tantivy checked against FTS5, the store's own full-text
table, as the oracle; and Tantivy following the op log written by another engine."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conftest import FAST
from edgerag import Engine, EngineConfig
from edgerag.errors import ConfigError
from edgerag.lexical.fts5 import Fts5Lexical
from edgerag.lexical.tantivy import TantivyLexical

TEXTS = {
    "pump.txt": "The pump seal leaks when the inlet valve is closed too fast.",
    "valve.txt": "Close valve V-05 before you replace the pump seal; torque 40 N·m.",
    "battery.txt": "Error E-120: battery low. Replace the battery pack KX40-BAT-3V.",
    "fan.txt": "Fan noise at start-up is normal; a rattling fan needs new bearings.",
    "café.txt": "The café's espresso machine descaling: run the naïve rinse cycle twice.",
    "log.txt": "Shift log: pumps checked, batteries charged, fans cleaned, valves greased.",
}

QUESTIONS = [
    "pump seal",
    "battery low E-120?",
    "how do I replace the battery",
    "valves and pumps",
    "cafe naive rinse",  # diacritics folded on both sides
    "rattling fan bearings",
    "KX40-BAT-3V",
    "torque",
    "descaling",
]


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    db = tmp_path / "kb"
    with Engine.open(db, FAST) as engine:
        engine.ingest([(name, text.encode()) for name, text in TEXTS.items()])
    return db


def test_tantivy_matches_the_fts5_oracle(collection: Path) -> None:
    """Same OR-of-terms semantics: the same items match every question (k above the corpus
    size), and the best item agrees wherever FTS5's best is clear (a score gap above 20 %)."""
    with Engine.open(collection) as engine:
        oracle, tantivy = Fts5Lexical(engine.store), TantivyLexical(engine.store)
        clear = 0
        for question in QUESTIONS:
            expected, got = oracle.search(question, 100), tantivy.search(question, 100)
            assert expected, question
            assert {k for k, _ in got} == {k for k, _ in expected}, question
            assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
            if len(expected) == 1 or expected[1][1] < 0.8 * expected[0][1]:
                clear += 1
                assert got[0][0] == expected[0][0], question
        assert clear >= 5  # the agreement check above really ran


def test_tantivy_follows_writes_and_deletes_of_another_engine(collection: Path) -> None:
    reader, writer = Engine.open(collection), Engine.open(collection)
    try:
        assert reader.lexical.name == "tantivy"

        def bm25_docs(question: str) -> list[str]:
            return [h.doc_id for h in reader.search(question, k=10, mode="bm25").hits]

        assert bm25_docs("espresso") == ["café.txt"]  # builds the index
        writer.ingest([("grinder.txt", b"The espresso grinder needs new burrs yearly.")])
        assert sorted(bm25_docs("espresso")) == ["café.txt", "grinder.txt"]
        writer.ingest([("grinder.txt", b"The coffee grinder needs new burrs yearly.")])
        assert bm25_docs("espresso") == ["café.txt"]
        assert bm25_docs("burrs") == ["grinder.txt"]
        writer.delete("café.txt")
        assert bm25_docs("espresso") == []
        stats = reader.stats()["lexical"]
        assert stats["built"] and stats["applied_lsn"] == reader.store.last_lsn()
        assert stats["rows"] == sum(reader.store.count_items().values())
    finally:
        reader.close()
        writer.close()


@pytest.mark.parametrize("postfilter_max", [2_000, 1])  # over-fetch, or allowed-key match
def test_a_filter_changes_which_items_rank_never_their_scores(
    collection: Path, monkeypatch: pytest.MonkeyPatch, postfilter_max: int
) -> None:
    from edgerag.lexical import tantivy as module

    monkeypatch.setattr(module, "POSTFILTER_MAX", postfilter_max)
    with Engine.open(collection) as engine:
        hits = engine.search("pump seal", k=10, mode="bm25", filters={"source": "valve.txt"}).hits
        assert [h.doc_id for h in hits] == ["valve.txt"]
        unfiltered = dict(engine.lexical.search("pump seal valve", 10))
        wanted = {"source": ["valve.txt", "log.txt"]}
        filtered = engine.lexical.search("pump seal valve", 10, wanted)
        docs = {h.key: h.doc_id for h in engine.search("pump seal valve", k=10, mode="bm25").hits}
        assert sorted(docs[key] for key, _ in filtered) == ["log.txt", "valve.txt"]
        assert all(unfiltered[key] == score for key, score in filtered)


def test_questions_without_searchable_words_find_nothing(collection: Path) -> None:
    with Engine.open(collection) as engine:
        for question in ("?!", "—", '"*"'):
            assert engine.lexical.search(question, 10) == []


@pytest.mark.parametrize("lexical", ["tantivy", "fts5"])
def test_both_engines_rank_the_obvious_document_first(tmp_path: Path, lexical: str) -> None:
    config = dataclasses.replace(FAST, lexical=lexical)
    with Engine.open(tmp_path / "kb", config) as engine:
        engine.ingest([(name, text.encode()) for name, text in TEXTS.items()])
        assert engine.lexical.name == lexical
        top = engine.search("battery pack KX40-BAT-3V", k=1, mode="bm25").hits[0]
        assert top.doc_id == "battery.txt"


def test_an_unknown_lexical_engine_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="lexical must be"):
        EngineConfig(lexical="lucene")


def test_a_large_collection_is_indexed_in_the_background_while_fts5_answers(
    collection: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgerag.lexical import tantivy as module

    monkeypatch.setattr(module, "SYNC_BUILD_ROWS", 0)  # every collection counts as large
    with Engine.open(collection) as engine:
        lexical, oracle = engine.lexical, Fts5Lexical(engine.store)
        assert isinstance(lexical, TantivyLexical)
        first = lexical.search("pump seal", 10)  # starts the build, answered by FTS5 meanwhile
        assert lexical._builder is not None
        lexical._builder.join(timeout=30)
        assert lexical.stats()["built"]
        built = lexical.search("pump seal", 10)
        assert {k for k, _ in first} == {k for k, _ in oracle.search("pump seal", 10)}
        assert {k for k, _ in built} == {k for k, _ in first}
        assert built != first  # Tantivy's scores now, not FTS5's
