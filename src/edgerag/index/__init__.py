"""Vector indexes: one engine per file, chosen by name, all checked against the flat oracle."""

from __future__ import annotations

import importlib

from edgerag.errors import ConfigError
from edgerag.index.base import QUANTIZATIONS, RESCORE_SOURCES, AnnEngine, IndexConfig

# name → "module:Class"; imported lazily so a missing extra only fails when chosen.
ENGINES: dict[str, str] = {
    "flat": "edgerag.index.flat:FlatEngine",
    "faiss": "edgerag.index.faiss:FaissEngine",
    "usearch": "edgerag.index.usearch:UsearchEngine",
}


def create_engine(dim: int, metric: str, config: IndexConfig) -> AnnEngine:
    """Build the engine ``config.backend`` names; unknown names list the valid ones."""
    if config.backend not in ENGINES:
        raise ConfigError(
            f"unknown index backend {config.backend!r}; choose one of {sorted(ENGINES)}"
        )
    if config.quantization not in QUANTIZATIONS:
        raise ConfigError(
            f"unknown quantization {config.quantization!r}; choose one of {list(QUANTIZATIONS)}"
        )
    if config.rescore not in RESCORE_SOURCES:
        raise ConfigError(
            f"unknown rescore source {config.rescore!r}; choose one of {list(RESCORE_SOURCES)}"
        )
    module_name, class_name = ENGINES[config.backend].split(":")
    engine_cls = getattr(importlib.import_module(module_name), class_name)
    engine: AnnEngine = engine_cls(dim, metric, config)
    return engine


__all__ = ["ENGINES", "AnnEngine", "IndexConfig", "create_engine"]
