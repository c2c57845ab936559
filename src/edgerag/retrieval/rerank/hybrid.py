"""Default reranker: bi-encoder cosine + BM25 over the top N, no extra weights needed.

RRF fuses by rank only, so a candidate the dense retriever put 3rd with cosine 0.81 and one it
put 4th with 0.34 look almost alike. Re-scoring with the actual cosine (from the index's f32
originals, so quantization error is gone too) and the BM25 score, normalised over the
candidates, restores that information for the few items that reach the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from edgerag.errors import ConfigError, NotFoundError
from edgerag.retrieval.rerank.base import Reranker, apply_scores
from edgerag.types import Hit

if TYPE_CHECKING:
    from edgerag.engine import Engine

logger = logging.getLogger(__name__)


class HybridReranker(Reranker):
    """``score = w_dense * cosine + w_bm25 * bm25 / max(bm25 of the candidates)``.

    Args:
        top_n: candidates re-scored.
        w_dense / w_bm25: weights of the two signals.
        space: vector space whose originals give the cosine.
    """

    name = "hybrid"

    def __init__(
        self, top_n: int = 20, w_dense: float = 0.7, w_bm25: float = 0.3, space: str = "text"
    ) -> None:
        if top_n < 1 or w_dense < 0 or w_bm25 < 0 or w_dense + w_bm25 == 0:
            raise ConfigError("HybridReranker needs top_n >= 1 and non-negative, non-zero weights")
        self.top_n = top_n
        self.w_dense = w_dense
        self.w_bm25 = w_bm25
        self.space = space

    def rerank(
        self,
        query: str,
        hits: Sequence[Hit],
        engine: Engine | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        head, tail = list(hits[: self.top_n]), list(hits[self.top_n :])
        if not head:
            return tail
        cosines = self._cosines(head, engine, query_vector)
        bm25 = np.array([h.scores.get("bm25", 0.0) for h in head], dtype=np.float32)
        top = float(bm25.max()) if len(bm25) else 0.0
        bm25_norm = bm25 / top if top > 0 else np.zeros_like(bm25)
        scores: list[float | None] = []
        for hit, cos, b in zip(head, cosines, bm25_norm, strict=True):
            if cos is None:
                scores.append(None)
                continue
            hit.scores["cosine"] = round(float(cos), 6)
            scores.append(self.w_dense * cos + self.w_bm25 * float(b))
        return apply_scores(head, scores, "rerank") + tail

    def _cosines(
        self, hits: list[Hit], engine: Engine | None, query_vector: np.ndarray | None
    ) -> list[float | None]:
        """Cosine of each hit to the query from stored vectors; the dense score as fallback."""
        fallback = [h.scores.get("dense") for h in hits]
        if engine is None or query_vector is None or self.space not in engine.indexes:
            return fallback
        keys = np.array([h.key for h in hits], dtype=np.int64)
        try:
            vectors = engine.indexes[self.space].get_vectors(keys)
        except NotFoundError:  # an item was deleted since retrieval: score the rest one by one
            return [self._one(engine, h, query_vector) for h in hits]
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        return [float(x) for x in _normalised(vectors) @ (q / (np.linalg.norm(q) or 1.0))]

    def _one(self, engine: Engine, hit: Hit, q: np.ndarray) -> float | None:
        try:
            v = engine.indexes[self.space].get_vectors(np.array([hit.key], dtype=np.int64))
        except NotFoundError:
            return None
        q = np.asarray(q, dtype=np.float32).reshape(-1)
        return float(_normalised(v)[0] @ (q / (np.linalg.norm(q) or 1.0)))


def _normalised(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)
