"""Exact brute-force engine over (optionally quantized) codes: the oracle and the smallest backend.

With ``quantization="f32"`` this is the exact oracle every other engine is tested against. With
f16/int8/binary it really stores the codes and scores against them, so it shows what the
quantization alone (without any graph) does to recall.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgerag.index._util import (
    KeyMap,
    as_queries,
    empty_result,
    merge_topk,
    sorted_unique_keys,
    topk,
)
from edgerag.index.base import AnnEngine, IndexConfig
from edgerag.index.quantize import get_codec
from edgerag.types import Keys, SearchResult, Vectors

logger = logging.getLogger(__name__)

# Rows scored per block: bounds the temporary (nq, block) score matrix and decoded block.
_BLOCK = 32_768


class FlatEngine(AnnEngine):
    """Dense code matrix + row→key array; deletes swap the last row into the hole."""

    name = "flat"
    supports_delete = True
    supports_filter = True

    def __init__(self, dim: int, metric: str, config: IndexConfig) -> None:
        super().__init__(dim, metric, config)
        self.codec = get_codec(config.quantization, dim)
        self._codes: npt.NDArray[np.generic] | None = None  # capacity-sized buffer
        self._row_keys = np.empty(0, dtype=np.int64)
        self._n = 0
        self._map = KeyMap()

    def __len__(self) -> int:
        return self._n

    def _reserve(self, extra: int, sample: npt.NDArray[np.generic]) -> None:
        need = self._n + extra
        if self._codes is not None and len(self._codes) >= need:
            return
        cap = max(need, 2 * (0 if self._codes is None else len(self._codes)), 1024)
        codes = np.empty((cap, *sample.shape[1:]), dtype=sample.dtype)
        row_keys = np.full(cap, -1, dtype=np.int64)
        if self._codes is not None:
            codes[: self._n] = self._codes[: self._n]
            row_keys[: self._n] = self._row_keys[: self._n]
        self._codes, self._row_keys = codes, row_keys

    def add(self, keys: Keys, vectors: Vectors) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) == 0:
            return
        codes = self.codec.encode(np.asarray(vectors, dtype=np.float32))
        self._reserve(len(keys), codes)
        assert self._codes is not None
        rows = np.arange(self._n, self._n + len(keys))
        self._codes[rows] = codes
        self._row_keys[rows] = keys
        self._map.insert(keys, rows)
        self._n += len(keys)

    def remove(self, keys: Keys) -> None:
        rows = self._map.delete(keys)
        if len(rows) == 0:
            return
        assert self._codes is not None
        # One O(n) compaction per batch keeps the code matrix dense (no tombstones to skip).
        live = np.ones(self._n, dtype=bool)
        live[rows] = False
        n = int(live.sum())
        self._codes[:n] = self._codes[: self._n][live]
        self._row_keys[:n] = self._row_keys[: self._n][live]
        self._row_keys[n : self._n] = -1
        self._n = n
        self._map.rebuild(self._row_keys[:n])

    def search(
        self, queries: Vectors, k: int, allowed: np.ndarray | None = None, **_: object
    ) -> SearchResult:
        q = as_queries(queries, self.dim)
        result = empty_result(len(q), k)
        if self._n == 0 or k <= 0:
            return result
        assert self._codes is not None
        if allowed is not None:
            rows = self._map.lookup(allowed)
            rows = sorted_unique_keys(rows[rows >= 0])  # O(n) when already sorted
            for start in range(0, len(rows), _BLOCK):
                block = rows[start : start + _BLOCK]
                scores = self.codec.scores(q, self._codes[block], self.metric)
                result = merge_topk(result, topk(scores, self._row_keys[block], k), k)
            return result
        for start in range(0, self._n, _BLOCK):
            stop = min(start + _BLOCK, self._n)
            scores = self.codec.scores(q, self._codes[start:stop], self.metric)
            result = merge_topk(result, topk(scores, self._row_keys[start:stop], k), k)
        return result

    def keys(self) -> Keys:
        return self._row_keys[: self._n].copy()

    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "flat.npz"
        codes = self._codes[: self._n] if self._codes is not None else np.empty((0, 0))
        state = {f"codec_{k}": v for k, v in self.codec.state().items()}
        with open(path, "wb") as fh:
            np.savez(fh, codes=codes, keys=self._row_keys[: self._n], **state)
        return [path]

    def load(self, directory: Path) -> None:
        with np.load(directory / "flat.npz") as data:
            self.codec.set_state(
                {k[len("codec_") :]: data[k] for k in data.files if k.startswith("codec_")}
            )
            keys = data["keys"].astype(np.int64)
            codes = data["codes"]
        self._n = len(keys)
        self._codes = codes.copy() if self._n else None
        self._row_keys = keys.copy()
        self._map = KeyMap()
        self._map.rebuild(self._row_keys)
