"""Find a document by what a person types: its id, the path it came from, or its file name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from edgerag.errors import ConfigError, NotFoundError

MAX_LISTED = 10


class _DocumentReader(Protocol):
    def document(self, doc_id: str) -> dict[str, Any] | None: ...

    def documents(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]: ...


def resolve_document(store: _DocumentReader, name: str) -> str:
    """The id of the one document ``name`` designates.

    Tried in order, first match wins: the exact id; the id of the path ``name`` resolves to; the
    exact source as ingested (what ``edgerag documents`` shows); the source's file name. A name
    that fits several documents is an error listing them, never a guess.
    """
    if store.document(name) is not None:
        return name
    resolved = str(Path(name).resolve())
    if store.document(resolved) is not None:
        return resolved
    docs = _all_documents(store)
    for matches in (
        [d for d in docs if d["source"] == name],
        [d for d in docs if Path(d["source"]).name == name],
    ):
        if len(matches) == 1:
            return str(matches[0]["doc_id"])
        if matches:
            raise ConfigError(_ambiguous(name, matches))
    raise NotFoundError(f"document {name!r} not found (see `edgerag documents`)")


def _all_documents(store: _DocumentReader, page: int = 1000) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        batch = store.documents(page, len(out))
        out += batch
        if len(batch) < page:
            return out


def _ambiguous(name: str, matches: list[dict[str, Any]]) -> str:
    listed = "\n".join(f"  {d['doc_id']}  ({d['source']})" for d in matches[:MAX_LISTED])
    more = f"\n  … and {len(matches) - MAX_LISTED} more" if len(matches) > MAX_LISTED else ""
    return (
        f"{name!r} matches {len(matches)} documents; give one of these ids instead:\n{listed}{more}"
    )
