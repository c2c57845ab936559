"""What every BM25 engine offers the retrieval pipeline."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from edgerag.retrieval.filters import Filters


class LexicalIndex(Protocol):
    """Ranks items by BM25 over their full-text rows (the store's ``items_fts``)."""

    name: str

    def search(
        self,
        query: str,
        k: int,
        filters: Filters | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """Top-k ``(key, score)``, higher is better, for the question ``query`` (plain text:
        punctuation is never query syntax); an empty list when it has no searchable word.
        ``allowed``: the sorted keys ``filters`` allows, when the caller has them already.
        A filter never changes an item's score, only which items may rank."""
        ...

    def prepare(self, background: bool = False) -> None:
        """Build whatever the first search would: now, or in a background thread (a server
        calls that at start, so its first question does not pay for it)."""
        ...

    def stats(self) -> dict[str, Any]:
        """What the engine holds, for ``Engine.stats()``."""
        ...

    def close(self) -> None: ...
