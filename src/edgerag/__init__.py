"""edgerag: an edge-first multimodal RAG engine.

>>> import edgerag
>>> with edgerag.Engine.open("./kb") as engine:          # doctest: +SKIP
...     engine.ingest(["manual.pdf"], metadata={"site": "plant-3"})
...     engine.search("what does alarm E-107 mean?", k=5)
"""

from __future__ import annotations

from edgerag.config import EngineConfig
from edgerag.engine import Engine
from edgerag.errors import (
    ConfigError,
    EdgeRagError,
    IndexCorruptError,
    InputError,
    InputTooLargeError,
    MissingExtraError,
    NotFoundError,
)
from edgerag.index.base import IndexConfig
from edgerag.ingest.limits import Limits
from edgerag.types import Hit, IngestReport, Modality, Query, SearchResponse, SpaceSpec

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "EdgeRagError",
    "Engine",
    "EngineConfig",
    "Hit",
    "IndexConfig",
    "IndexCorruptError",
    "IngestReport",
    "InputError",
    "InputTooLargeError",
    "Limits",
    "MissingExtraError",
    "Modality",
    "NotFoundError",
    "Query",
    "SearchResponse",
    "SpaceSpec",
    "__version__",
]
