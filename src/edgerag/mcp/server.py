"""The MCP tools over one collection, on the official MCP Python SDK.

Scopes: reading tools are always there; ``ingest`` changes the collection and needs write scope.
On stdio the person who launches the server decides (``--allow-write``); over HTTP each request's
API key decides, the same keys and scopes as the HTTP API (``edgerag keys``).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from edgerag._optional import require
from edgerag.errors import EdgeRagError
from edgerag.store.lookup import resolve_document

require("mcp")

from mcp.server import MCPServer  # noqa: E402
from mcp.server.mcpserver.exceptions import ToolError  # noqa: E402

# The scope of the request being served; stdio sets it once, HTTP per request.
REQUEST_SCOPE: contextvars.ContextVar[str] = contextvars.ContextVar("edgerag_mcp_scope")

INSTRUCTIONS = (
    "edgerag searches a local collection of manuals, images, audio and video. Use `search` for "
    "ranked passages, `ask` for a cited answer, `get_document` to read one document. Cite "
    "results by their `citation` field."
)
MAX_ITEMS = 200
MAX_TEXT = 4000

Filters = Annotated[
    dict[str, Any] | None,
    Field(
        description="AND of KEY: VALUE (a list value = any of): modality (text, image, audio, "
        "video), source (glob, e.g. '*.pdf'), tags, page, doc_id, ingested_after, or any "
        "metadata key."
    ),
]
Mode = Annotated[
    str, Field(description="hybrid (dense + BM25), dense or bm25", pattern="^(hybrid|dense|bm25)$")
]


def citation_label(
    source: str, page: int | None, t_start: float | None, t_end: float | None
) -> str:
    """How a person cites an item: the file name, then the page or the time range."""
    label = Path(source).name
    if page:
        label += f", p. {page}"
    if t_start is not None:
        label += f", {t_start:.1f}–{(t_end if t_end is not None else t_start):.1f} s"
    return label


def _translated(fn: Callable[..., Any]) -> Callable[..., Any]:
    """edgerag's own errors (bad filter, unknown document, bad input) reach the agent as a tool
    error with their message; anything else stays a crash whose text is kept server-side."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgeRagError as exc:
            raise ToolError(str(exc)) from exc

    return wrapper


def _hit(hit: Any) -> dict[str, Any]:
    return {
        "citation": citation_label(hit.source, hit.page, hit.t_start, hit.t_end),
        "id": hit.id,
        "doc_id": hit.doc_id,
        "source": hit.source,
        "modality": hit.modality,
        "page": hit.page,
        "t_start": hit.t_start,
        "t_end": hit.t_end,
        "score": round(hit.score, 6),
        "text": hit.text[:MAX_TEXT],
        "metadata": hit.metadata,
    }


def build_server(engine: Any, offer_ingest: bool = False) -> MCPServer:
    """An MCP server exposing ``engine``.

    ``offer_ingest`` lists the ``ingest`` tool; calling it still needs the request's scope
    (:data:`REQUEST_SCOPE`) to be write or admin. A read-only stdio server does not list it.
    """
    server = MCPServer("edgerag", instructions=INSTRUCTIONS)

    @server.tool()
    @_translated
    def search(
        query: Annotated[str, Field(description="What to look for, in words.")],
        k: Annotated[int, Field(ge=1, le=100, description="How many results.")] = 5,
        filters: Filters = None,
        mode: Mode = "hybrid",
    ) -> dict[str, Any]:
        """Ranked passages (text chunks, image OCR/labels, audio/video transcripts) with
        citations: file, page or time range."""
        response = engine.search(query, k=k, filters=filters, mode=mode)
        return {"hits": [_hit(h) for h in response.hits], "plan": response.plan}

    @server.tool()
    @_translated
    def ask(
        question: Annotated[str, Field(description="The question.")],
        k: Annotated[int, Field(ge=1, le=50, description="Passages to answer from.")] = 5,
        filters: Filters = None,
    ) -> dict[str, Any]:
        """A short answer built only from the collection, each claim marked [n] and each n a
        citation with its file, page or time range and the quoted snippet."""
        answer = engine.ask(question, k=k, filters=filters)
        return {
            "answer": answer.answer,
            "citations": [
                {**c.to_dict(), "citation": citation_label(c.source, c.page, c.t_start, c.t_end)}
                for c in answer.citations
            ],
            "partial": answer.partial,
            "generator": answer.generator,
        }

    @server.tool()
    @_translated
    def get_document(
        id: Annotated[
            str, Field(description="A doc_id from search results, or a source / file name.")
        ],
        max_items: Annotated[int, Field(ge=1, le=MAX_ITEMS)] = 50,
    ) -> dict[str, Any]:
        """One document: its source, modality, metadata and its items (chunks, segments,
        frames) in order, each with its citation."""
        doc = engine.document(resolve_document(engine.store, id))
        keys = engine.store.doc_keys(doc["doc_id"])
        rows = engine.store.items(keys[:max_items])
        items = [
            {
                "citation": citation_label(doc["source"], r["page"], r["t_start"], r["t_end"]),
                "id": r["item_id"],
                "modality": r["modality"],
                "page": r["page"],
                "t_start": r["t_start"],
                "t_end": r["t_end"],
                "text": r["text"][:MAX_TEXT],
            }
            for r in (rows[k] for k in keys[:max_items] if k in rows)
        ]
        return {
            "doc_id": doc["doc_id"],
            "source": doc["source"],
            "modality": doc["modality"],
            "title": doc.get("title"),
            "metadata": doc["metadata"],
            "items_total": doc["items"],
            "items": items,
        }

    if offer_ingest:
        server.add_tool(_translated(_ingest_tool(engine)), name="ingest")
    return server


def _ingest_tool(engine: Any) -> Any:
    def ingest(
        path: Annotated[
            str | None, Field(description="A file or folder on the server's machine.")
        ] = None,
        name: Annotated[
            str | None, Field(description="With `text`: the document's name, e.g. notes.md")
        ] = None,
        text: Annotated[str | None, Field(description="Document content to add as `name`.")] = None,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="Metadata for every document, e.g. tags.")
        ] = None,
    ) -> dict[str, Any]:
        """Add or update documents (needs write scope): a path on the server, or name + text."""
        if REQUEST_SCOPE.get("read") not in ("write", "admin"):
            raise ToolError(
                "ingest needs write scope: start `edgerag mcp --allow-write`, or use an API key "
                "with scope write"
            )
        if (path is None) == (text is None) or (text is not None and not name):
            raise ToolError("give either `path`, or `name` and `text`")
        inputs: Any = Path(path) if path is not None else (name, text.encode())  # type: ignore[union-attr]
        report = engine.ingest(inputs, metadata=metadata)
        return {
            "added": report.added,
            "unchanged": report.unchanged,
            "errors": [{"input": s, "reason": r} for s, r in report.errors],
            "items": report.items,
            "lsn": report.lsn,
        }

    return ingest
