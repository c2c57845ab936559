"""usearch HNSW engine: f32 / f16 / i8 / b1 (sign bits, hamming), with real deletes.

usearch's Python ``Index.search`` (2.x) takes no filter predicate, so a filtered search
oversamples and post-filters here, widening until k allowed hits are found; the SpaceIndex
planner normally sends selective filters to the exact path before it gets this far.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgerag._optional import require
from edgerag.index._util import as_queries, empty_result, keep_allowed, sorted_unique_keys
from edgerag.index.base import AnnEngine, IndexConfig
from edgerag.index.quantize import hamming_to_score
from edgerag.types import Keys, SearchResult, Vectors

logger = logging.getLogger(__name__)

_DTYPES = {"f32": "f32", "f16": "f16", "int8": "i8", "binary": "b1"}
# Threads per call: one for a handful of queries (no pool hand-off), all cores (0) for batches.
PARALLEL_MIN_QUERIES = 4
MAX_POSTFILTER_ROUNDS = 6


class UsearchEngine(AnnEngine):
    """usearch ``Index`` keyed directly by our int64 keys (they are non-negative)."""

    name = "usearch"
    supports_delete = True
    supports_filter = False

    def __init__(self, dim: int, metric: str, config: IndexConfig) -> None:
        super().__init__(dim, metric, config)
        self._mod: Any = require("usearch.index")
        self.binary = config.quantization == "binary"
        self._nbits = ((dim + 7) // 8) * 8
        self._index = self._new_index()
        # Exact vectors by key (the SpaceIndex's originals), for compact().
        self.vector_source: Any = None

    def _usearch_metric(self) -> str:
        if self.binary:
            return "hamming"
        if self.metric == "l2":
            return "l2sq"
        # i8 with "ip" compares raw integer dot products; "cos" keeps distances in cosine units.
        # For unit vectors cos == ip, and f32/f16 "ip" skips a normalisation.
        return "cos" if self.config.quantization == "int8" else "ip"

    def _new_index(self) -> Any:
        cfg = self.config
        return self._mod.Index(
            ndim=self._nbits if self.binary else self.dim,
            metric=self._usearch_metric(),
            dtype=_DTYPES[cfg.quantization],
            connectivity=cfg.connectivity,
            expansion_add=cfg.ef_construction,
            expansion_search=cfg.ef_search,
        )

    def _encode(self, vectors: Vectors) -> npt.NDArray[Any]:
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        return np.packbits(v > 0, axis=1) if self.binary else v

    def __len__(self) -> int:
        return len(self._index)

    def add(self, keys: Keys, vectors: Vectors) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) == 0:
            return
        if np.any(keys < 0):
            raise ValueError("usearch keys must be non-negative")
        self._index.add(keys.astype(np.uint64), self._encode(vectors), threads=0)

    def remove(self, keys: Keys) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        keys = keys[keys >= 0]
        if len(keys):
            self._index.remove(keys.astype(np.uint64))

    def compact(self) -> None:
        """Rebuild from the live vectors: usearch keeps a removed vector's bytes in its slot
        (and in the saved file) until the slot is reused, so erasure rebuilds."""
        keys = np.asarray(self._index.keys, dtype=np.int64)
        if self.vector_source is not None:
            vectors = self.vector_source(keys) if len(keys) else None
        else:
            vectors = np.asarray(self._index.get(keys.astype(np.uint64)), dtype=np.float32)
        self._index = self._new_index()
        if len(keys):
            self.add(keys, vectors)

    def _raw_search(self, q: npt.NDArray[np.float32], count: int, ef: int | None) -> SearchResult:
        nq = len(q)
        ef = ef or self.config.ef_search
        if ef != self._index.expansion_search:  # a plain int store; cheap to compare first
            self._index.expansion_search = ef
        threads = 1 if nq < PARALLEL_MIN_QUERIES else 0
        x = np.packbits(q > 0, axis=1) if self.binary else q
        m = self._index.search(x, count, threads=threads)
        keys = np.asarray(m.keys, dtype=np.uint64).reshape(nq, -1).astype(np.int64)
        dist = np.asarray(m.distances, dtype=np.float32).reshape(nq, -1)
        counts = np.asarray(getattr(m, "counts", [keys.shape[1]])).reshape(-1, 1)
        valid = np.arange(keys.shape[1])[None, :] < counts
        dist = np.where(valid, dist, 0.0)  # slots past `counts` hold garbage (even NaN)
        if self.binary:
            scores = hamming_to_score(dist, self.dim)
        elif self.metric == "l2":
            scores = -dist
        else:
            scores = 1.0 - dist
        keys = np.where(valid, keys, -1)
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        if keys.shape[1] < count:  # single-query Matches hold only the valid hits
            pad = count - keys.shape[1]
            keys = np.pad(keys, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return SearchResult(keys, scores)

    def search(
        self,
        queries: Vectors,
        k: int,
        allowed: np.ndarray | None = None,
        ef: int | None = None,
        **_: object,
    ) -> SearchResult:
        q = as_queries(queries, self.dim)
        n = len(self)
        if n == 0 or k <= 0:
            return empty_result(len(q), k)
        if allowed is None:
            return self._raw_search(q, k, ef)
        allowed = sorted_unique_keys(allowed)
        want = min(k, len(allowed))
        count = int(min(n, max(2 * k, k * n / max(len(allowed), 1) * 2)))
        for _ in range(MAX_POSTFILTER_ROUNDS):
            res, found = keep_allowed(self._raw_search(q, count, max(ef or 0, count)), allowed, k)
            if found >= want or count >= n:
                return res
            count = min(n, count * 4)
        return res

    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "usearch.index"
        self._index.save(str(path))
        return [path]

    def load(self, directory: Path) -> None:
        index = self._new_index()
        index.load(str(directory / "usearch.index"))
        self._index = index

    def close(self) -> None:
        self._index = None
