"""The vector index contract.

Two layers:

* :class:`AnnEngine` — one file per engine (flat, faiss, usearch): an approximate structure over
  (possibly quantized) vectors, keyed by int64 item keys. Batch-first.
* :class:`edgerag.index.space.SpaceIndex` — what the engine above uses: engine + original f32
  vectors memory-mapped on disk (for oversampled rescoring and exact filtered scans) + a manifest
  with the applied op-log LSN and checksums.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgerag.types import Keys, SearchResult, Vectors

QUANTIZATIONS = ("f32", "f16", "int8", "binary")
METRICS = ("cos", "ip", "l2")
RESCORE_SOURCES = ("originals", "f16")


@dataclass(frozen=True)
class IndexConfig:
    """How a space is indexed.

    Attributes:
        backend: engine name from the registry ("flat", "faiss", "usearch").
        quantization: "f32" | "f16" | "int8" | "binary" (codes inside the engine).
        oversample: candidates fetched per wanted result before rescoring against the f32
            originals; 1 disables rescoring.
        connectivity: HNSW M.
        ef_construction / ef_search: HNSW beam widths.
        exact_threshold: a filter allowing at most this many items (or this fraction of the
            space, whichever is larger) is searched exactly over the allowed ids.
        rescore: where rescoring reads candidates: "originals" (the memory-mapped f32 file:
            warm, its clean pages count in RSS but the kernel can drop them under pressure) or
            "f16" (an in-memory half copy: 2 bytes/dim of anonymous memory, the f32 pages are
            then touched only by exact scans and ``get_vectors``). Measured at 100k × 512
            (``benchmarks/rescore_bench.py``): RSS 3,117 vs 2,094 B/vector, anonymous 903 vs
            1,927, recall@10 1.000 vs 0.999.

    Defaults measured with ``benchmarks/index_bench.py`` (100k × 512, 2 cores): int8 + 3x
    rescoring gives recall@10 ≥ 0.99 where raw SQ8 gives 0.86–0.97. An exact scan costs about
    0.3–0.5 µs per allowed row at 512-d (10k rows ≈ 4 ms, 10× an unfiltered search), so it is
    kept for small sets (≤ 2,000) and for filters of ≤ 1% of the space, where filtered HNSW
    loses recall; wider filters use the engine's filter (faiss) or oversampling (usearch).
    """

    backend: str = "faiss"
    quantization: str = "int8"
    oversample: float = 3.0
    connectivity: int = 32
    ef_construction: int = 200
    ef_search: int = 64
    exact_threshold: int = 2_000
    exact_fraction: float = 0.01
    rescore: str = "originals"


class AnnEngine(ABC):
    """An approximate nearest-neighbour structure. Scores are similarities (higher = better)."""

    name: str = ""
    supports_delete: bool = True
    supports_filter: bool = False  # can restrict search to an id set natively

    def __init__(self, dim: int, metric: str, config: IndexConfig) -> None:
        self.dim = dim
        self.metric = metric
        self.config = config

    @abstractmethod
    def add(self, keys: Keys, vectors: Vectors) -> None:
        """Add vectors; keys must not be present (SpaceIndex removes first)."""

    @abstractmethod
    def remove(self, keys: Keys) -> None:
        """Remove keys (tombstones allowed where the engine cannot delete)."""

    @abstractmethod
    def search(self, queries: Vectors, k: int, allowed: np.ndarray | None = None) -> SearchResult:
        """Top-k per query; ``allowed`` (sorted int64 keys) restricts results when given."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def save(self, directory: Path) -> list[Path]:
        """Write the engine's files into ``directory``; return the files written."""

    @abstractmethod
    def load(self, directory: Path) -> None:
        """Load from files written by :meth:`save` (checksums already verified)."""

    def compact(self) -> None:  # noqa: B027 - optional hook
        """Drop tombstones (engines without delete rebuild here)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
