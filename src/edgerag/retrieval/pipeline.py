"""Retriever: encode → (filter) → ANN and/or BM25 → fuse (RRF) → hydrate, with stage timings."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import numpy as np

from edgerag.retrieval.filters import Filters
from edgerag.retrieval.fusion import fuse
from edgerag.retrieval.query import IMAGE_MIN_SIM, IMAGETEXT, EncodedQuery, encode_query
from edgerag.retrieval.text_query import has_content_words
from edgerag.types import Hit, Query, SearchResponse

if TYPE_CHECKING:
    from edgerag.engine import Engine

logger = logging.getLogger(__name__)

RankedLists = dict[str, list[tuple[int, float]]]

# BM25 and the entity lookup need only a question's words, so for a text-only question they run
# on a worker while the encoder turns the same words into a vector (onnxruntime, Tantivy and
# SQLite release the GIL while they work). A busy pool is never waited for: the lookups then
# run after the ANN search, as they would without it.
_AHEAD_WORKERS = 2
_ahead_pool = ThreadPoolExecutor(_AHEAD_WORKERS, thread_name_prefix="edgerag-lexical")
_ahead_free = threading.BoundedSemaphore(_AHEAD_WORKERS)


def _settle(future: Future[Any]) -> None:
    """Cancel ``future`` if it has not started, else wait for it; its outcome is not raised
    (a search that failed before using the lists reports its own error). A caller that
    returns or raises while a worker still reads the store could otherwise have the store
    closed under it."""
    if not future.cancel():
        wait([future])


class _Timer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._last = self._t0

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = self.ms.get(stage, 0.0) + (now - self._last) * 1000
        self._last = now

    def add(self, stages: dict[str, float]) -> None:
        """Stages timed elsewhere (inside the query encoder); the next lap starts now."""
        self.ms.update(stages)
        self._last = time.perf_counter()

    def total(self) -> dict[str, float]:
        self.ms["total"] = (time.perf_counter() - self._t0) * 1000
        return self.ms


class FilterCache:
    """Allowed-key sets by (filter, LSN): a repeated filter costs one SQL scan per write."""

    def __init__(self, size: int = 64) -> None:
        self._data: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, engine: Engine, filters: Filters, lsn: int) -> np.ndarray:
        key = (json.dumps(filters, sort_keys=True, default=str), lsn)
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        allowed = engine.store.filter_keys(filters)
        with self._lock:
            self._data[key] = allowed
            while len(self._data) > self._size:
                self._data.popitem(last=False)
        return allowed


class Retriever:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.filters = FilterCache()

    def search(
        self,
        query: Query,
        k: int,
        filters: Filters | None,
        mode: str,
        fusion: str = "early",
        boosts: dict[str, float] | None = None,
        ocr: bool = True,
    ) -> SearchResponse:
        timer = _Timer()
        engine = self.engine
        allowed = None
        if filters:
            allowed = self.filters.get(engine, filters, engine.store.last_lsn())
            timer.lap("filter")
            if len(allowed) == 0:
                return SearchResponse([], timer.total(), mode, "filter allows nothing")
        n_candidates = max(k, engine.config.candidates) if mode == "hybrid" or boosts else k
        ahead = self._lexical_ahead(query, mode, fusion, n_candidates, filters, allowed)
        try:
            encoded = encode_query(engine, query, ocr=ocr)
            timer.add(encoded.timings_ms)
            rankings, plan = self._rank(
                encoded, mode, fusion, n_candidates, filters, allowed, timer, ahead
            )
        finally:
            if ahead is not None:  # never leave a worker reading the store after we return
                _settle(ahead[1])
        fused, method = self._fuse(rankings, n_candidates)
        if method:
            timer.lap("fuse")
        if boosts:  # boosts re-sort: every candidate needs its row
            hits = _boost(self._hydrate(fused, rankings, method), boosts)
        else:
            hits = self._hydrate_top(fused, rankings, method, k)
        timer.lap("hydrate")
        plan_text = " + ".join(plan)
        return SearchResponse(
            hits[:k], timer.total(), mode, plan_text, encoded.read, encoded.photo_vector
        )

    def rankings(
        self, query: Query, n: int, filters: Filters | None = None, mode: str = "hybrid"
    ) -> dict[str, list[tuple[int, float]]]:
        """The ranked lists before fusion, by signal name ("dense", "bm25", …): what
        ``scripts/fit_fusion.py`` fits the fusion weights on."""
        allowed = (
            self.filters.get(self.engine, filters, self.engine.store.last_lsn())
            if filters
            else None
        )
        encoded = encode_query(self.engine, query)
        rankings, _ = self._rank(encoded, mode, "early", n, filters, allowed, _Timer())
        return rankings

    def candidates(
        self, query: Query | str, n: int, filters: Filters | None = None, mode: str = "hybrid"
    ) -> tuple[dict[str, list[tuple[int, float]]], dict[int, Hit]]:
        """Each signal's ranked list, unfused, and a hit for every key in them: what a fleet
        replica sends the router, which fuses all shards' lists as one node would
        (:func:`~edgerag.retrieval.fusion.fuse`). Keys deleted meanwhile are dropped."""
        rankings = self.rankings(Query.of(query), n, filters, mode)
        rows = self.engine.store.items(sorted({key for r in rankings.values() for key, _ in r}))
        kept = {name: [(key, s) for key, s in r if key in rows] for name, r in rankings.items()}
        return kept, {key: _hit(row, 0.0, {}) for key, row in rows.items()}

    def _lexical_ahead(
        self,
        query: Query,
        mode: str,
        fusion: str,
        n: int,
        filters: Filters | None,
        allowed: np.ndarray | None,
    ) -> tuple[str, Future[RankedLists]] | None:
        """Start the lexical lists of a text-only question before it is encoded: (its words,
        the future lists), or None when they must wait for the encoded query (a photo's or a
        clip's words join them) or when every worker is busy."""
        text = query.text
        if query.image is not None or query.audio is not None or fusion != "early":
            return None
        if mode not in ("hybrid", "bm25") or not text or not text.strip():
            return None
        if mode == "hybrid" and not has_content_words(text):
            return None
        free = _ahead_free
        if not free.acquire(blocking=False):
            return None
        try:
            future = _ahead_pool.submit(self._lexical_lists, text, mode, n, filters, allowed)
        except RuntimeError:  # the interpreter is shutting down
            free.release()
            return None
        future.add_done_callback(lambda _: free.release())
        return text, future

    def _lexical_lists(
        self, text: str, mode: str, n: int, filters: Filters | None, allowed: np.ndarray | None
    ) -> RankedLists:
        """BM25 and, in hybrid mode, the entity matches of one text (see :meth:`_rank`)."""
        lists = {"bm25": self.engine.lexical.search(text, n, filters, allowed)}
        if mode == "hybrid":
            # Exact entity matches (E-107, KX40-CPL-140E) as one more ranked list; absent when
            # the query names no entity the store knows.
            entity = self.engine.store.entity_hits(text, n, filters, allowed)
            if entity:
                lists["entity"] = entity
        return lists

    def _rank(
        self,
        encoded: EncodedQuery,
        mode: str,
        fusion: str,
        n: int,
        filters: Filters | None,
        allowed: np.ndarray | None,
        timer: _Timer,
        ahead: tuple[str, Future[RankedLists]] | None = None,
    ) -> tuple[RankedLists, list[str]]:
        """One ranked list per (space) under early fusion, per (part) under late fusion."""
        rankings: dict[str, list[tuple[int, float]]] = {}
        plan: list[str] = []
        dense = mode in ("hybrid", "dense") or not encoded.bm25_text()
        if dense:
            if fusion == "early":
                searches = [(space, space, vec) for space, vec in encoded.fused().items()]
            else:
                searches = [(f"{p.space}:{p.modality}", p.space, p.vector) for p in encoded.parts]
            # Without a query photo, images of the head's space must earn their place (see
            # IMAGE_MIN_SIM); with one, its neighbours are the point.
            photo = any(p.modality == "image" for p in encoded.parts)
            for name, space, vector in searches:
                result, how = self.engine.indexes[space].search(vector[None, :], n, allowed)
                floor = IMAGE_MIN_SIM if space == IMAGETEXT and not photo else -np.inf
                rankings[_label(name)] = [
                    (int(key), float(score))
                    for key, score in zip(result.keys[0], result.scores[0], strict=True)
                    if key >= 0 and score >= floor
                ]
                plan.append(f"{space}:{how}")
            timer.lap("ann")
        if ahead is not None and ahead[0] == encoded.bm25_text():
            lists = ahead[1].result()  # started before encoding (see _lexical_ahead)
            rankings.update(lists)
            plan += list(lists)
            timer.lap("bm25")
            return rankings, plan
        if mode in ("hybrid", "bm25"):
            texts = (
                [encoded.bm25_text()]
                if fusion == "early"
                else [p.text for p in encoded.parts if p.text and p.space == "text"]
            )
            if mode == "hybrid":  # dense speaks for a question of function words only
                texts = [t for t in texts if has_content_words(t)]
            for i, text in enumerate(t for t in texts if t):
                name = "bm25" if i == 0 else f"bm25:{i}"
                rankings[name] = self.engine.lexical.search(text, n, filters, allowed)
                plan.append("bm25")
            timer.lap("bm25")
        if mode == "hybrid" and encoded.bm25_text():
            entity = self.engine.store.entity_hits(encoded.bm25_text(), n, filters, allowed)
            if entity:  # see _lexical_lists
                rankings["entity"] = entity
                plan.append("entity")
            timer.lap("entity")
        return rankings, plan

    def _fuse(
        self, rankings: dict[str, list[tuple[int, float]]], n: int
    ) -> tuple[list[tuple[int, float]], str]:
        config = self.engine.config
        return fuse(rankings, n, getattr(config, "rank_fusion", "weighted"), config.rrf_k)

    def _hydrate_top(
        self,
        fused: list[tuple[int, float]],
        rankings: dict[str, list[tuple[int, float]]],
        method: str,
        k: int,
    ) -> list[Hit]:
        """The first ``k`` hits of ``fused`` that still exist: reads k rows, not every fused
        candidate (hybrid fuses 50 to return 5: hydrating all of them was most of the stage)."""
        hits: list[Hit] = []
        start = 0
        while len(hits) < k and start < len(fused):
            # rows deleted between ranking and hydration are skipped: read a few spares
            take = (k - len(hits)) + (2 if start else 0)
            hits += self._hydrate(fused[start : start + take], rankings, method)
            start += take
        return hits[:k]

    def _hydrate(
        self,
        fused: list[tuple[int, float]],
        rankings: dict[str, list[tuple[int, float]]],
        method: str = "rrf",
    ) -> list[Hit]:
        rows = self.engine.store.items([key for key, _ in fused])
        components = {name: dict(r) for name, r in rankings.items()}
        hits = []
        for key, score in fused:
            row = rows.get(key)
            if row is None:  # deleted between ranking and hydration
                continue
            scores = {n: c[key] for n, c in components.items() if key in c}
            if method:
                scores[method] = score
            hits.append(_hit(row, score, scores))
        return hits


def _label(name: str) -> str:
    """Component score names: "dense" for the text space (the common case), else the space."""
    return {"text": "dense", "text:text": "dense"}.get(name, name)


def _boost(hits: list[Hit], boosts: dict[str, float]) -> list[Hit]:
    """Per-modality score multipliers, applied after fusion (stable re-sort)."""
    for hit in hits:
        factor = boosts.get(hit.modality, 1.0)
        if factor != 1.0:
            hit.scores["boost"] = factor
            hit.score = round(hit.score * factor, 6)
    return sorted(hits, key=lambda h: -h.score)


def _hit(row: dict[str, Any], score: float, scores: dict[str, float]) -> Hit:
    return Hit(
        key=row["key"],
        id=row["item_id"],
        doc_id=row["doc_id"],
        source=row["source"],
        modality=row["modality"],
        score=round(score, 6),
        text=row["text"],
        page=row["page"],
        char_start=row["char_start"],
        char_end=row["char_end"],
        t_start=row["t_start"],
        t_end=row["t_end"],
        metadata=row["metadata"],
        scores={k: round(v, 6) for k, v in scores.items()},
    )
