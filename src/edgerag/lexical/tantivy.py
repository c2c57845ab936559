"""BM25 through Tantivy: a per-process in-memory index that follows the op log.

Why: FTS5's ``bm25()`` scores every row that holds any query term, so a natural question with
a common word ("one", "use", "have") over 100k items costs 10–35 ms; Tantivy's block-max WAND
skips the rows that cannot reach the top k (p95 0.4 ms on the same queries and store,
``benchmarks/bm25_bench.py``).

How it stays right: the store's FTS5 table stays the source of truth (written in the op's own
transaction). This index is derived from it and lives in RAM only, so there is nothing to
recover after a crash and nothing in plain text on the disk of an encrypted collection. It is
built on the first search (about 13 µs per item on one core) from the LSN read *before* the
rows, and before every search it replays the keys of ops committed since, by any process
(``Store.keys_touched_since``), exactly as the vector indexes follow the log. Filtered searches
keep the unfiltered scores: the best hits post-filtered against the keys the filter allows (SQL),
or, when those cannot hold the top k, the match restricted to the allowed keys.

Tokens mirror FTS5's ``porter unicode61``: split on non-alphanumerics, lower-case, diacritics
folded, English stemming (Snowball's Porter2 rather than Porter: "generalization" and a few
other words stem differently). Scores are Tantivy's BM25 (k1 1.2, b 0.75, Lucene's idf
``ln(1 + (N - n + 0.5) / (n + 0.5))``; FTS5 omits the ``1 +``, so common words weigh a bit more).
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from edgerag._optional import require
from edgerag.lexical.fts5 import Fts5Lexical
from edgerag.retrieval.filters import Filters
from edgerag.retrieval.text_query import query_terms

if TYPE_CHECKING:
    from edgerag.store.sqlite import Store

_TOKENIZER = "edgerag"
_WRITER_HEAP = 32_000_000  # bytes of indexing buffer before a segment is flushed
# Up to this many full-text rows the index is built on the first search itself (~0.3 s here);
# above, in the background while FTS5 answers.
SYNC_BUILD_ROWS = 20_000
# A filtered search post-filters at most this many of the best hits before it restricts the
# match to the allowed keys instead.
POSTFILTER_MAX = 2_000


class TantivyLexical:
    """Tantivy BM25 over the store's full-text rows (see the module docstring)."""

    name = "tantivy"

    def __init__(self, store: Store) -> None:
        self._tv = require("tantivy")
        self.store = store
        self._fts5 = Fts5Lexical(store)
        self._lock = threading.Lock()
        self._analyzer = (
            self._tv.TextAnalyzerBuilder(self._tv.Tokenizer.simple())
            .filter(self._tv.Filter.lowercase())
            .filter(self._tv.Filter.ascii_fold())
            .filter(self._tv.Filter.stemmer("english"))
            .build()
        )
        builder = self._tv.SchemaBuilder()
        builder.add_integer_field("key", stored=True, indexed=True)
        builder.add_text_field("text", tokenizer_name=_TOKENIZER, index_option="freq")
        self._schema = builder.build()
        self._index: Any = None  # built on the first search
        self._writer: Any = None
        self._live_searcher: Any = None
        self.applied_lsn = 0
        self._closed = False
        self._lock_for_builder = threading.Lock()
        self._builder: threading.Thread | None = None

    def search(
        self,
        query: str,
        k: int,
        filters: Filters | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        searcher = self._searcher()
        if searcher is None:  # a large index still being built: FTS5 ranks meanwhile
            return self._fts5.search(query, k, filters)
        match = self.match(query)
        if match is None:
            return []
        if not filters:
            return _hits(searcher, match, k)
        if allowed is None:
            allowed = self.store.filter_keys(filters)
        return self._filtered(searcher, match, k, allowed)

    def match(self, query: str) -> Any | None:
        """The Tantivy query for ``query``: its terms analysed as the index was, OR-ed; None
        when it has no searchable word."""
        tokens = [tok for term in query_terms(query) for tok in self._analyzer.analyze(term)]
        if not tokens:
            return None
        tv = self._tv
        return tv.Query.boolean_query(
            [(tv.Occur.Should, tv.Query.term_query(self._schema, "text", tok)) for tok in tokens]
        )

    def _filtered(
        self, searcher: Any, match: Any, k: int, allowed: np.ndarray
    ) -> list[tuple[int, float]]:
        """Top-k among ``allowed`` (sorted) with the unfiltered scores (a filter never changes
        a score): the best hits post-filtered when that surely holds the top k, else the match
        restricted to the allowed keys (exact; ~8 ms per 1,000 allowed keys here, so only
        for selective filters and those the over-fetch could not answer)."""
        if not len(allowed):
            return []
        fetch = max(4 * k, math.ceil(2 * k * searcher.num_docs / len(allowed)))
        if fetch <= POSTFILTER_MAX:  # else a selective filter: straight to the restricted match
            hits = _hits(searcher, match, fetch)
            keys = np.fromiter((key for key, _ in hits), dtype=np.int64, count=len(hits))
            slot = np.minimum(np.searchsorted(allowed, keys), len(allowed) - 1)
            kept = [hit for hit, ok in zip(hits, allowed[slot] == keys, strict=True) if ok]
            if len(kept) >= k or len(hits) < fetch:  # every match was seen, or k of the best
                return kept[:k]
        tv = self._tv
        only = tv.Query.const_score_query(
            tv.Query.term_set_query(self._schema, "key", allowed.tolist()), 0.0
        )
        both = tv.Query.boolean_query([(tv.Occur.Must, match), (tv.Occur.Must, only)])
        return _hits(searcher, both, k)

    def _searcher(self) -> Any | None:
        """The searcher, following the log; None while a collection too large to build on the
        question's time is built in the background (a one-shot CLI search of 100k items would
        otherwise wait 1.5 s for an index it uses once)."""
        if self._index is None and sum(self.store.count_items().values()) > SYNC_BUILD_ROWS:
            self.prepare(background=True)
            return None
        return self._follow()

    def _follow(self) -> Any:
        """The searcher, after replaying whatever the op log holds beyond ``applied_lsn``."""
        with self._lock:
            return self._follow_locked()

    def _follow_locked(self) -> Any:
        last = self.store.last_lsn()
        if self._index is None:
            self._build(last)
        elif self.applied_lsn < last:
            self._sync(self.store.keys_touched_since(self.applied_lsn, upto=last))
            self.applied_lsn = last
        return self._live_searcher

    def _build(self, last: int) -> None:
        # `last` is read before the rows: rows of later ops are replayed again by the next
        # follow (idempotent), so this index never claims an op it may have missed.
        index = self._tv.Index(self._schema)
        index.register_tokenizer(_TOKENIZER, self._analyzer)
        writer = index.writer(heap_size=_WRITER_HEAP, num_threads=1)
        searcher = _add(self._tv, index, writer, self.store.fulltext_rows())
        # published last: until then searches see no index and rank in FTS5 (see _searcher)
        self._writer, self._live_searcher, self.applied_lsn = writer, searcher, last
        self._index = index

    def _sync(self, keys: np.ndarray) -> None:
        for key in keys.tolist():
            self._writer.delete_documents_by_term("key", key)
        self._live_searcher = _add(
            self._tv, self._index, self._writer, self.store.fulltext_rows(keys)
        )

    def prepare(self, background: bool = False) -> None:
        if background:  # one builder thread per index, however many callers ask
            with self._lock_for_builder:
                if self._builder is None:
                    self._builder = threading.Thread(
                        target=self.prepare, name="bm25-build", daemon=True
                    )
                    self._builder.start()
            return
        with self._lock:
            if not self._closed:  # the engine may close before a background prepare() runs
                self._follow_locked()

    def stats(self) -> dict[str, Any]:
        searcher = self._live_searcher
        built = searcher is not None
        return {
            "engine": self.name,
            "built": built,
            "applied_lsn": self.applied_lsn if built else None,
            "rows": searcher.num_docs if built else None,
        }

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._writer = self._live_searcher = self._index = None


def _hits(searcher: Any, query: Any, k: int) -> list[tuple[int, float]]:
    hits = searcher.search(query, k).hits
    return [(int(searcher.doc(addr)["key"][0]), float(score)) for score, addr in hits]


def _add(tv: Any, index: Any, writer: Any, rows: Any) -> Any:
    """Add ``(key, text)`` rows, commit, and return a searcher that sees them."""
    for key, text in rows:
        writer.add_document(tv.Document(key=key, text=text))
    writer.commit()
    index.reload()
    return index.searcher()
