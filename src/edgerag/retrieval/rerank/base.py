"""The reranker contract: re-score the top candidates of a search, best first."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from edgerag.types import Hit

if TYPE_CHECKING:
    from edgerag.engine import Engine

logger = logging.getLogger(__name__)


class Reranker(ABC):
    """Re-scores hits for a query.

    Attributes:
        name: shown in ``hit.scores`` keys and logs.
        top_n: how many of the retrieved candidates are re-scored (the rest keep their order
            after them); this, plus ``budget_ms`` for model rerankers, is what keeps
            query → ranked, cited context inside the latency goal.
    """

    name: str = "rerank"
    top_n: int = 20

    @abstractmethod
    def rerank(
        self,
        query: str,
        hits: Sequence[Hit],
        engine: Engine | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """Return ``hits`` re-ordered (and ``hit.score``/``hit.scores['rerank']`` updated)."""


def apply_scores(hits: Sequence[Hit], scores: Sequence[float | None], key: str) -> list[Hit]:
    """Set the new scores, then sort: scored hits by score, unscored ones after, in old order."""
    scored: list[tuple[float, int, Hit]] = []
    rest: list[Hit] = []
    for i, (hit, score) in enumerate(zip(hits, scores, strict=True)):
        if score is None:
            rest.append(hit)
            continue
        hit.scores[key] = round(float(score), 6)
        hit.score = round(float(score), 6)
        scored.append((float(score), i, hit))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [h for _, _, h in scored] + rest
