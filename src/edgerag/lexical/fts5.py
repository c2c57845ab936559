"""BM25 straight from the store's SQLite FTS5 table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgerag.retrieval.filters import Filters
from edgerag.retrieval.text_query import fts_match

if TYPE_CHECKING:
    from edgerag.store.sqlite import Store


class Fts5Lexical:
    """FTS5's ``bm25()`` (k1 1.2, b 0.75, porter + unicode61 tokens); nothing to keep in sync."""

    name = "fts5"

    def __init__(self, store: Store) -> None:
        self.store = store

    def search(
        self,
        query: str,
        k: int,
        filters: Filters | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        return self.store.bm25(fts_match(query), k, filters)  # the filter is SQL here

    def prepare(self, background: bool = False) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {"engine": self.name}

    def close(self) -> None:
        pass
