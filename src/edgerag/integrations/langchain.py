"""edgerag as a LangChain retriever (extra ``langchain``: ``pip install 'edgerag[langchain]'``).

```python
from edgerag.integrations.langchain import EdgeragRetriever

retriever = EdgeragRetriever(db="kb", k=4, filters={"modality": "text"})
docs = retriever.invoke("What does alarm E-107 mean?")
docs[0].metadata["source"], docs[0].metadata["page"], docs[0].metadata["score"]
```
"""

from __future__ import annotations

import asyncio
from typing import Any

from edgerag._optional import require
from edgerag.integrations._common import check_mode, hit_metadata, open_engine

require("langchain_core.retrievers")

from langchain_core.callbacks import (  # noqa: E402
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import ConfigDict, PrivateAttr  # noqa: E402

__all__ = ["EdgeragRetriever"]


class EdgeragRetriever(BaseRetriever):
    """Search an edgerag collection from LangChain; sync (``invoke``) and async (``ainvoke``).

    Args:
        db: a collection directory (opened here, closed by :meth:`close`), or
        engine: an open :class:`~edgerag.engine.Engine` (left open).
        k: number of documents returned.
        filters: edgerag filters, e.g. ``{"modality": "text", "source": "manuals/*.pdf"}``.
        mode: "hybrid" (dense + BM25), "dense" or "bm25".

    Each :class:`~langchain_core.documents.Document` carries the item text as ``page_content``
    and ``source``, ``page``, ``score``, ``modality``, ``doc_id``, ``id``, ``t_start``/``t_end``
    plus the document's own metadata in ``metadata``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    db: str | None = None
    engine: Any = None
    k: int = 4
    filters: dict[str, Any] | None = None
    mode: str = "hybrid"

    _engine: Any = PrivateAttr(default=None)
    _owned: bool = PrivateAttr(default=False)

    def __init__(self, **data: Any) -> None:
        # Checked before pydantic runs, so a bad value is edgerag's ConfigError (exit 2 / HTTP
        # 400 at the boundaries), not a ValidationError wrapping it.
        check_mode(data.get("mode", "hybrid"))
        if (data.get("db") is None) == (data.get("engine") is None):
            open_engine(data.get("db"), data.get("engine"))  # raises the ConfigError
        super().__init__(**data)

    def model_post_init(self, context: Any, /) -> None:
        self._engine, self._owned = open_engine(self.db, self.engine)

    def _search(self, query: str) -> list[Document]:
        response = self._engine.search(query, k=self.k, filters=self.filters, mode=self.mode)
        return [
            Document(page_content=hit.text, metadata=hit_metadata(hit), id=hit.id)
            for hit in response.hits
        ]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self._search(query)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        # The engine is synchronous (SQLite + a CPU index): keep the event loop free.
        return await asyncio.to_thread(self._search, query)

    def close(self) -> None:
        """Close the collection if this retriever opened it."""
        if self._owned and self._engine is not None:
            self._engine.close()
            self._engine = None
