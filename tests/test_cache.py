"""Result cache: LSN-scoped (writes and deletes invalidate), whole-query keys, semantic layer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from conftest import FAST
from edgerag import Engine
from edgerag.encoders.fake import HashEncoder
from edgerag.errors import ConfigError
from edgerag.retrieval.cache import QueryVectorMemo, ResultCache, query_key
from edgerag.types import Query

Q = "when do I replace the pump seal"


def test_repeated_search_is_a_hit(engine, docs):
    engine.ingest(docs)
    first = engine.search(Q, k=3)
    again = engine.search("  When do I REPLACE the pump seal ", k=3)  # normalised text
    assert [h.id for h in again.hits] == [h.id for h in first.hits]
    assert again.plan.endswith("[cache]") and "cache" in again.timings_ms
    stats = engine.stats()["cache"]
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (1, 1, 0.5)


def test_a_write_invalidates(engine, docs):
    engine.ingest(docs)
    before = engine.search("cavitation noise at the impeller", k=5)
    assert not any("cavitation" in h.text for h in before.hits)
    engine.ingest([("new.txt", b"Cavitation noise at the impeller means low suction pressure.")])
    after = engine.search("cavitation noise at the impeller", k=5)
    assert "[cache]" not in after.plan
    assert after.hits[0].doc_id == "new.txt"
    assert engine.stats()["cache"]["invalidations"] == 1


def test_a_delete_invalidates(engine, docs):
    engine.ingest(docs)
    hits = engine.search(Q, k=5).hits
    engine.delete(hits[0].doc_id)
    fresh = engine.search(Q, k=5)
    assert "[cache]" not in fresh.plan
    assert hits[0].doc_id not in {h.doc_id for h in fresh.hits}


def test_key_covers_filters_mode_k_and_options(engine, docs):
    engine.ingest(docs)
    engine.search(Q, k=3)
    for kwargs in ({"k": 2}, {"k": 3, "mode": "bm25"}, {"k": 3, "filters": {"modality": "text"}}):
        assert "[cache]" not in engine.search(Q, **kwargs).plan
    assert engine.stats()["cache"]["misses"] == 4


def test_key_includes_image_audio_content_and_weights(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"\xff\xd8 one photo")
    base = query_key(Query(text="pump", image=b"\xff\xd8 one photo"), 5, None, "hybrid")
    same = query_key(Query(text="Pump", image=str(photo)), 5, None, "hybrid")
    other = query_key(Query(text="pump", image=b"\xff\xd8 another"), 5, None, "hybrid")
    voice = query_key(Query(text="pump", audio=b"RIFF"), 5, None, "hybrid")
    weighted = query_key(
        Query(text="pump", image=b"\xff\xd8 one photo", weights={"image": 2}), 5, None, "hybrid"
    )
    assert base == same  # content hash: bytes and a path to the same bytes agree
    assert len({base, other, voice, weighted}) == 4


def test_cached_hits_are_copies(engine, docs):
    engine.ingest(docs)
    first = engine.search(Q, k=3)
    first.hits[0].scores["tampered"] = 1.0
    first.hits[0].text = "tampered"
    again = engine.search(Q, k=3)
    assert "tampered" not in again.hits[0].scores and again.hits[0].text != "tampered"


def test_semantic_cache_hits_near_duplicates_only(engine, docs):
    engine.ingest(docs)
    engine.cache = ResultCache(engine, semantic_threshold=0.8)
    engine.search("replace the mechanical seal when the pump leaks", k=3)
    near = engine.search("replace the mechanical seal when the pump leaks badly", k=3)
    assert near.plan.endswith("[semantic cache]")
    far = engine.search("bearing grease interval", k=3)
    assert "[cache]" not in far.plan
    stats = engine.stats()["cache"]
    assert stats["semantic_hits"] == 1 and stats["misses"] == 2
    engine.ingest([("x.txt", b"The pump seal kit is part 4471.")])  # LSN moved: all gone
    again = engine.search("replace the mechanical seal when the pump leaks badly", k=3)
    assert "cache]" not in again.plan


def test_semantic_threshold_is_validated(engine):
    with pytest.raises(ConfigError):
        ResultCache(engine, semantic_threshold=1.5)


class CountingEncoder(HashEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []
        self.texts: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        self.texts.extend(texts)
        return super().encode(texts)


def test_query_vector_memo_encodes_a_query_once(docs):
    encoder = CountingEncoder()
    with Engine.open(":memory:", FAST, encoder=encoder) as eng:
        eng.ingest(docs)
        encoder.calls.clear()
        encoder.texts.clear()
        eng.cache.query_vector(Q)
        eng.search(Q, k=3)  # the retriever reuses the memoised vector
        question = "what grease do the bearings need?"
        eng.ask(question, k=2)
        # Q once, the question once; the composer then encodes candidate units (not queries).
        assert encoder.calls[:2] == [1, 1] and encoder.texts[:2] == [Q, question]
        assert Q not in encoder.texts[2:] and question not in encoder.texts[2:]
        assert eng.stats()["cache"]["query_vectors"]["hits"] >= 2
        assert QueryVectorMemo.install(encoder) is eng.cache.memo  # never wrapped twice


def test_disabled_cache_always_computes(engine, docs):
    engine.ingest(docs)
    engine.cache.enabled = False
    engine.search(Q, k=3)
    assert "[cache]" not in engine.search(Q, k=3).plan
