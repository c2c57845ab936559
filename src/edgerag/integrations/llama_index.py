"""edgerag as a LlamaIndex retriever (extra ``llamaindex``: ``pip install 'edgerag[llamaindex]'``).

```python
from llama_index.core.query_engine import RetrieverQueryEngine
from edgerag.integrations.llama_index import EdgeragRetriever

retriever = EdgeragRetriever(db="kb", similarity_top_k=4)
engine = RetrieverQueryEngine.from_args(retriever, llm=my_llm)
print(engine.query("What does alarm E-107 mean?"))
```
"""

from __future__ import annotations

import asyncio
from typing import Any

from edgerag._optional import require
from edgerag.errors import ConfigError
from edgerag.integrations._common import check_mode, hit_metadata, open_engine

require("llama_index.core.retrievers")

from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilters,
)

__all__ = ["EdgeragRetriever"]

# Keys that locate a node; the LLM does not need them in its context.
_HIDDEN_FROM_LLM = ["id", "doc_id", "score", "t_start", "t_end"]


class EdgeragRetriever(BaseRetriever):
    """Search an edgerag collection from LlamaIndex, returning ``NodeWithScore``.

    Args:
        db: a collection directory (opened here, closed by :meth:`close`), or
        engine: an open :class:`~edgerag.engine.Engine` (left open).
        similarity_top_k: number of nodes returned.
        filters: edgerag filters (a dict such as ``{"modality": "text"}``), or LlamaIndex
            ``MetadataFilters`` with ``==``/``in`` conditions joined by AND.
        mode: "hybrid" (dense + BM25), "dense" or "bm25".
    """

    def __init__(
        self,
        db: str | None = None,
        similarity_top_k: int = 4,
        filters: dict[str, Any] | MetadataFilters | None = None,
        mode: str = "hybrid",
        *,
        engine: Any | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.similarity_top_k = similarity_top_k
        self.filters = _edgerag_filters(filters)
        self.mode = check_mode(mode)
        self._engine, self._owned = open_engine(db, engine)

    def _nodes(self, query: str) -> list[NodeWithScore]:
        response = self._engine.search(
            query, k=self.similarity_top_k, filters=self.filters, mode=self.mode
        )
        return [
            NodeWithScore(
                node=TextNode(
                    id_=hit.id,
                    text=hit.text,
                    metadata=hit_metadata(hit),
                    excluded_llm_metadata_keys=_HIDDEN_FROM_LLM,
                    excluded_embed_metadata_keys=_HIDDEN_FROM_LLM,
                ),
                score=hit.score,
            )
            for hit in response.hits
        ]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._nodes(query_bundle.query_str)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # The engine is synchronous (SQLite + a CPU index): keep the event loop free.
        return await asyncio.to_thread(self._nodes, query_bundle.query_str)

    def close(self) -> None:
        """Close the collection if this retriever opened it."""
        if self._owned and self._engine is not None:
            self._engine.close()
            self._engine = None


def _edgerag_filters(filters: dict[str, Any] | MetadataFilters | None) -> dict[str, Any] | None:
    if filters is None or isinstance(filters, dict):
        return filters
    if filters.condition not in (None, FilterCondition.AND):
        raise ConfigError("edgerag filters AND their conditions; OR is a list value: key in [..]")
    out: dict[str, Any] = {}
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            raise ConfigError("nested MetadataFilters are not supported; flatten them")
        if f.operator == FilterOperator.EQ:
            out[f.key] = f.value
        elif f.operator == FilterOperator.IN:
            out[f.key] = list(f.value)  # type: ignore[arg-type]
        else:
            raise ConfigError(
                f"filter {f.key}: operator {f.operator.value!r} is not supported (use == or in)"
            )
    return out
