"""What the framework adapters share: opening a collection and turning a hit into metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgerag.config import MODES
from edgerag.errors import ConfigError, NotFoundError
from edgerag.types import Hit


def open_engine(db: str | Path | None, engine: Any | None) -> tuple[Any, bool]:
    """The engine to search and whether the adapter owns it (and must close it).

    Exactly one of ``db`` (a collection directory that already exists) and ``engine`` (an open
    :class:`~edgerag.engine.Engine`) is given.
    """
    if (db is None) == (engine is None):
        raise ConfigError("give exactly one of db= (a collection directory) or engine=")
    if engine is not None:
        return engine, False
    path = Path(db)  # type: ignore[arg-type]
    if not (path / "store.db").exists():
        raise NotFoundError(f"{path}: no edgerag collection here (run `edgerag ingest` first)")
    from edgerag.engine import Engine

    return Engine.open(path), True


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"unknown search mode {mode!r}; choose one of {list(MODES)}")
    return mode


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """A hit's provenance as flat metadata: the document's own metadata, then edgerag's keys."""
    meta: dict[str, Any] = dict(hit.metadata)
    meta.update(
        {
            "id": hit.id,
            "doc_id": hit.doc_id,
            "source": hit.source,
            "modality": hit.modality,
            "score": hit.score,
            "page": hit.page,
            "t_start": hit.t_start,
            "t_end": hit.t_end,
        }
    )
    return meta
