"""Ingestion: turn raw bytes into text pages (``extract``) and pages into chunks (``chunking``).

```
bytes ──extract()──► Extracted(pages=[(page, text), ...]) ──chunk_pages()──► [Chunk, ...]
```

Bad input raises :class:`edgerag.errors.InputError` naming the source and the reason.
"""

from __future__ import annotations

from edgerag.ingest.chunking import (
    RegexSpans,
    TokenSpans,
    WordpieceSpans,
    chunk_pages,
    default_spans,
)
from edgerag.ingest.extract import Extracted, extract, supported_suffixes
from edgerag.ingest.limits import Limits

__all__ = [
    "Extracted",
    "Limits",
    "RegexSpans",
    "TokenSpans",
    "WordpieceSpans",
    "chunk_pages",
    "default_spans",
    "extract",
    "supported_suffixes",
]
