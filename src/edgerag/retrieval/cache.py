"""Result cache (exact + optional semantic) and a query-vector memo, both scoped to the LSN.

Keys hold the whole query (normalised text, content hashes of image/audio, fusion weights) plus
filters, mode and k. Every entry belongs to the collection's last LSN: the first lookup after any
write or delete (local or replicated, they all go through ``Engine.apply``) sees a new LSN and
drops everything, so a cached result can never outlive the data it came from.

The semantic cache (off unless ``semantic_threshold`` is set) also answers a text query whose
vector has cosine >= threshold with a cached one under the same filters/mode/k: "how do I
reset E-107" vs "how to reset E-107?".

The query-vector memo lets ``ask`` compute the query vector (for reranking and the semantic
cache) without the retriever encoding the same text a second time: it wraps the encoder's
``encode`` for single-text calls only, so ingestion batches pass straight through.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgerag.errors import ConfigError
from edgerag.types import Query, SearchResponse

if TYPE_CHECKING:
    from edgerag.encoders.base import TextEncoder
    from edgerag.engine import Engine

logger = logging.getLogger(__name__)


def normalise_text(text: str | None) -> str:
    """Case and whitespace never change results (FTS5 and MiniLM are uncased)."""
    return " ".join((text or "").lower().split())


def _content_hash(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        path = Path(value)
        data = path.read_bytes() if path.is_file() else value.encode()
    else:
        data = bytes(value)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def query_key(
    query: Query, k: int, filters: Any, mode: str, options: dict[str, Any] | None = None
) -> tuple[str, str]:
    """(text part, everything else) of the cache key for one search."""
    rest = json.dumps(
        {
            "options": options or {},
            "image": _content_hash(query.image),
            "audio": _content_hash(query.audio),
            "weights": sorted((query.weights or {}).items()),
            "filters": filters or {},
            "mode": mode,
            "k": k,
        },
        sort_keys=True,
        default=str,
    )
    return normalise_text(query.text), rest


class QueryVectorMemo:
    """LRU of single-text encodes, installed over ``encoder.encode`` (thread-safe)."""

    MAX_CHARS = 1000  # queries are short; a one-chunk document being ingested is not memoised

    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray], size: int = 1024) -> None:
        self._encode = encode
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) != 1 or len(texts[0]) > self.MAX_CHARS:  # batches and chunks pass through
            return self._encode(texts)
        text = texts[0]
        with self._lock:
            vec = self._data.get(text)
            if vec is not None:
                self._data.move_to_end(text)
                self.hits += 1
                return vec.copy()
        vec = self._encode([text])
        with self._lock:
            self.misses += 1
            self._data[text] = vec.copy()
            while len(self._data) > self._size:
                self._data.popitem(last=False)
        return vec

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    @classmethod
    def install(cls, encoder: TextEncoder, size: int = 1024) -> QueryVectorMemo:
        """Wrap ``encoder.encode`` once (an encoder shared by engines keeps one memo)."""
        current = encoder.__dict__.get("encode")
        if isinstance(current, cls):
            return current
        memo = cls(encoder.encode, size)
        encoder.encode = memo  # type: ignore[method-assign]
        return memo


@dataclass
class _Entry:
    response: SearchResponse
    vector: np.ndarray | None = None


class ResultCache:
    """LSN-scoped LRU of search responses, with an optional semantic layer.

    Args:
        engine: the collection (its store gives the LSN, its encoder the query vectors).
        size: entries kept (LRU).
        semantic_threshold: cosine at/above which a near-duplicate text query is a hit;
            ``None`` disables the semantic cache.
        enabled: ``False`` makes every lookup a miss (benchmarks of the uncached path).
    """

    def __init__(
        self,
        engine: Engine,
        size: int = 1024,
        semantic_threshold: float | None = None,
        enabled: bool = True,
    ) -> None:
        if semantic_threshold is not None and not 0 < semantic_threshold <= 1:
            raise ConfigError("semantic_threshold must be in (0, 1]")
        self.engine = engine
        self.size = size
        self.semantic_threshold = semantic_threshold
        self.enabled = enabled
        self.memo = QueryVectorMemo.install(engine.encoder)
        self._data: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lsn = -1
        self._lock = threading.Lock()
        self.hits = self.misses = self.semantic_hits = self.invalidations = 0

    def query_vector(self, text: str) -> np.ndarray:
        """The (memoised) text-space vector of ``text``, shape (dim,)."""
        return np.asarray(self.engine.encoder.encode([text]))[0]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def _scope(self) -> int:
        """Drop every entry when the collection moved past the LSN they were computed at."""
        # the LSN the indexes hold after following the log (not merely the store's), so no
        # entry is filed under an LSN whose ops its computation did not see
        lsn = self.engine.follow()
        with self._lock:
            if lsn != self._lsn:
                if self._data:
                    self.invalidations += 1
                self._data.clear()
                self._lsn = lsn
        return lsn

    def search(
        self,
        query: Query,
        k: int,
        filters: Any,
        mode: str,
        compute: Callable[[], SearchResponse],
        **options: Any,
    ) -> SearchResponse:
        """Return the cached response for this search, or ``compute()`` it and keep it.

        ``options`` are any further search arguments (fusion, boosts, …): part of the key.
        """
        if not self.enabled:
            return compute()
        start = time.perf_counter()
        self._scope()
        key = query_key(query, k, filters, mode, options)
        with self._lock:
            entry = self._data.get(key)
            if entry is not None:
                self._data.move_to_end(key)
                self.hits += 1
                return _copy(entry.response, "cache", start)
        vector = self._semantic_vector(query)
        if vector is not None:
            found = self._nearest(key[1], vector)
            if found is not None:
                return _copy(found.response, "semantic cache", start)
        response = compute()
        with self._lock:
            self.misses += 1
            self._data[key] = _Entry(_copy(response, None), vector)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return response

    def _semantic_vector(self, query: Query) -> np.ndarray | None:
        if self.semantic_threshold is None or query.image is not None or query.audio is not None:
            return None
        if not (query.text or "").strip():
            return None
        return self.query_vector(query.text or "")

    def _nearest(self, rest: str, vector: np.ndarray) -> _Entry | None:
        with self._lock:
            same = [e for (_, r), e in self._data.items() if r == rest and e.vector is not None]
            if not same:
                return None
            matrix = np.stack([e.vector for e in same if e.vector is not None])
            sims = matrix @ vector
            best = int(np.argmax(sims))
            if float(sims[best]) >= (self.semantic_threshold or 2.0):
                self.semantic_hits += 1
                self.hits += 1
                return same[best]
        return None

    def stats(self) -> dict[str, Any]:
        lookups = self.hits + self.misses
        return {
            "enabled": self.enabled,
            "entries": len(self._data),
            "hits": self.hits,
            "semantic_hits": self.semantic_hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / lookups, 4) if lookups else 0.0,
            "invalidations": self.invalidations,
            "semantic_threshold": self.semantic_threshold,
            "query_vectors": {"hits": self.memo.hits, "misses": self.memo.misses},
        }


def _copy(response: SearchResponse, source: str | None, start: float = 0.0) -> SearchResponse:
    """Independent copy (callers such as rerankers mutate hits); a hit's timings are the
    lookup's own, and its plan says it came from the cache."""
    hits = [replace(h, scores=dict(h.scores), metadata=dict(h.metadata)) for h in response.hits]
    plan = f"{response.plan} [{source}]" if source else response.plan
    out = replace(response, hits=hits, timings_ms=dict(response.timings_ms), plan=plan)
    if source:
        took = (time.perf_counter() - start) * 1000
        out.timings_ms = {"cache": took, "total": took}
    return out
