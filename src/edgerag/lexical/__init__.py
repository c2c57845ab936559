"""Full-text (BM25) ranking: a small protocol, one file per engine.

The store's SQLite FTS5 table is the source of truth for every engine: it is written in the
same transaction as the op that changes an item, so it is crash-safe and shared by every
process. ``fts5`` ranks there directly. ``tantivy`` (the default) ranks through a per-process
in-memory Tantivy index that follows the op log like the vector indexes do: on a 2-core box it
answers the long OR-queries of natural questions over 100k items ~25× faster than FTS5 (whose
``bm25()`` visits every row that holds any query term), with the same R@1 on the Q/A sets
(``benchmarks/bm25_bench.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgerag.config import LEXICAL_ENGINES
from edgerag.errors import ConfigError
from edgerag.lexical.base import LexicalIndex

if TYPE_CHECKING:
    from edgerag.store.sqlite import Store

__all__ = ["LEXICAL_ENGINES", "LexicalIndex", "open_lexical"]


def open_lexical(engine: str, store: Store) -> LexicalIndex:
    """The BM25 ranker named by ``EngineConfig.lexical`` over ``store``.

    Raises:
        MissingExtraError: "tantivy" without the ``tantivy`` extra installed.
    """
    if engine == "fts5":
        from edgerag.lexical.fts5 import Fts5Lexical

        return Fts5Lexical(store)
    if engine == "tantivy":
        from edgerag.lexical.tantivy import TantivyLexical

        return TantivyLexical(store)
    raise ConfigError(f"unknown lexical engine {engine!r}; choose one of {list(LEXICAL_ENGINES)}")
