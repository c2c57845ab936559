"""Original float32 vectors on disk, memory-mapped: the ground truth for rescoring and exact scans.

One append-only file of raw little-endian float32 rows (``originals-<gen>-<pid>-<rand>.f32``) plus
an in-memory row → key array (-1 = dead row) and a sorted key → row map. Upserting appends a new
row and kills the old one; :meth:`Originals.compact` copies the live rows into a new file.

Why append-only: the rows a checkpoint covers are never rewritten, so a checkpoint only has to
hash the bytes appended since the previous one (manifest *segments*), and a crash after the
checkpoint can only leave extra bytes at the end, past the prefix any manifest names.

Many processes: a file is appended to only by the process that created it (it holds an flock on
it while it lives). A process that loaded another's file maps its checkpointed prefix read-only
and copies that prefix into a file of its own before its first append (copy on write), so no
process ever changes bytes another has mapped; nobody truncates a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from edgerag.errors import NotFoundError
from edgerag.index._util import KeyMap, empty_result, merge_topk, sorted_unique_keys, topk
from edgerag.index.base import RESCORE_SOURCES
from edgerag.index.quantize import rowwise_similarity, similarity
from edgerag.types import Keys, SearchResult, Vectors

logger = logging.getLogger(__name__)

_SCAN_BLOCK = 65_536  # rows per block of a full scan: bounds the (nq, block) score matrix
_HASH_CHUNK = 16 << 20


def data_file_name(generation: int) -> str:
    """A new, unique originals file name (generation for humans, pid + random for uniqueness)."""
    return f"originals-{generation:06d}-{os.getpid()}-{secrets.token_hex(4)}.f32"


def hash_file_range(path: Path, offset: int, length: int) -> str:
    """sha256 hex of ``length`` bytes of ``path`` from ``offset``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(offset)
        left = length
        while left > 0:
            chunk = fh.read(min(_HASH_CHUNK, left))
            if not chunk:
                raise EOFError(f"{path} ends {left} bytes before offset {offset + length}")
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def _grown(arr: npt.NDArray[Any], used: int, need: int, fill: float) -> npt.NDArray[Any]:
    """``arr`` with room for ``need`` rows (capacity doubles), the first ``used`` rows kept and
    the new ones set to ``fill``."""
    if len(arr) >= need:
        return arr
    grown = np.full((max(need, 2 * len(arr)), *arr.shape[1:]), fill, dtype=arr.dtype)
    grown[:used] = arr[:used]
    return grown


class Originals:
    """Memory-mapped float32 vectors keyed by int64, with tombstones and compaction."""

    def __init__(
        self,
        directory: Path,
        dim: int,
        generation: int = 1,
        creating: Callable[[], AbstractContextManager[None]] | None = None,
        rescore: str = "originals",
    ) -> None:
        """``rescore``: "originals" re-ranks candidates on the mapped f32 rows; "f16" on an
        in-memory half-precision copy (2 bytes/dim resident, the mapping is then touched only
        by exact scans and ``get``)."""
        if rescore not in RESCORE_SOURCES:
            raise ValueError(f"unknown rescore source {rescore!r}; choose one of {RESCORE_SOURCES}")
        self.directory = directory
        self.dim = dim
        self.generation = generation
        # held while a new file is created and locked (so a stray sweep cannot take it)
        self._creating = creating
        self._path: Path | None = None  # the file backing the rows (None: no rows yet)
        self._owned = False  # True: this process created the file and appends to it
        self.row_bytes = 4 * dim
        self._rows = 0  # rows in the data file (live + dead)
        self._row_keys = np.empty(0, dtype=np.int64)
        self._map = KeyMap()
        self._arr: npt.NDArray[np.float32] | None = None  # ndarray view of the memmap
        # rows → f16 copy for rescoring (rescore="f16"); capacity grows like _row_keys
        self._half: npt.NDArray[np.float16] | None = (
            np.empty((0, dim), dtype=np.float16) if rescore == "f16" else None
        )
        self._fh: BinaryIO | None = None
        self.segments: list[dict[str, object]] = []  # checksummed prefix, in order

    # ------------------------------------------------------------------ state

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def file_name(self) -> str:
        return self._path.name if self._path is not None else ""

    @property
    def rows(self) -> int:
        return self._rows

    def __len__(self) -> int:
        return len(self._map)

    def keys(self) -> Keys:
        """Live keys, sorted."""
        return self._map.keys().copy()

    def row_keys(self) -> npt.NDArray[np.int64]:
        return self._row_keys[: self._rows]

    def lookup(self, keys: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Rows of ``keys`` (-1 where absent)."""
        return self._map.lookup(keys)

    def rows_of(self, keys: Keys, hint: Keys | None) -> npt.NDArray[np.int64]:
        """Rows of ``keys`` (-1 where absent), trying ``hint`` (an engine's labels of the same
        keys) first.

        The engine and the originals append the same upserts in the same order, so a label is
        its key's row until one of the two compacts without the other. A hinted row is taken
        only when it holds that very key (a dead row holds -1), so a stale hint costs the map
        lookup it was meant to save, never a wrong row. It pays for the few dozen candidates
        of a rescoring: right after the graph search has pushed the map out of the CPU caches,
        a binary search of hashed keys misses cache at nearly every step (~25 µs for 30 keys
        in a 100k map on a 2-core VM, a tenth of the whole search).
        """
        if hint is None or self._rows == 0:
            return self._map.lookup(keys)
        rows = np.minimum(hint, self._rows - 1)  # -1 (no label) reads the last slot: masked
        present = keys >= 0  # -1 pads a result
        ok = (self._row_keys[rows] == keys) & present
        if ok.all():
            return rows
        rows = np.where(ok, rows, -1)
        stale = present & ~ok
        if stale.any():
            rows[stale] = self._map.lookup(keys[stale])
        return rows

    def _remap(self) -> None:
        if self._rows == 0 or self._path is None:
            self._arr = None
            return
        mm = np.memmap(self._path, dtype="<f4", mode="r", shape=(self._rows, self.dim))
        self._arr = mm.view(np.ndarray)  # plain ndarray over the mapping: cheaper indexing

    # ------------------------------------------------------------------ mutation

    def append(self, keys: Keys, vectors: Vectors) -> None:
        """Append rows for keys that are not live (callers remove replaced keys first)."""
        keys = np.asarray(keys, dtype=np.int64)
        v = np.ascontiguousarray(vectors, dtype="<f4")
        if len(keys) == 0:
            return
        if self._fh is None:
            self._own()
        assert self._fh is not None
        self._fh.seek(self._rows * self.row_bytes)
        self._fh.write(v.tobytes())
        self._fh.flush()  # makes the rows visible to the mmap through the page cache
        rows = np.arange(self._rows, self._rows + len(keys), dtype=np.int64)
        need = self._rows + len(keys)
        self._row_keys = _grown(self._row_keys, self._rows, need, fill=-1)
        self._row_keys[rows] = keys
        if self._half is not None:
            self._half = _grown(self._half, self._rows, need, fill=0)
            self._half[rows] = v
        self._rows += len(keys)
        self._map.insert(keys, rows)
        self._remap()

    def _new_file(self) -> tuple[Path, BinaryIO]:
        """Create and flock a file only this process will write."""
        self.directory.mkdir(parents=True, exist_ok=True)
        guard = self._creating() if self._creating else None
        if guard is not None:
            guard.__enter__()
        try:
            path = self.directory / data_file_name(self.generation)
            fh = open(path, "w+b")  # noqa: SIM115 - kept open for appends
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        finally:
            if guard is not None:
                guard.__exit__(None, None, None)
        return path, fh

    def _own(self) -> None:
        """Copy on write: move the rows into a new file of this process before appending."""
        path, fh = self._new_file()
        for start in range(0, self._rows, _SCAN_BLOCK):
            assert self._arr is not None
            fh.write(np.ascontiguousarray(self._arr[start : start + _SCAN_BLOCK]).tobytes())
        fh.flush()
        self._path, self._fh, self._owned = path, fh, True
        self._remap()

    def remove(self, keys: npt.ArrayLike) -> int:
        """Kill the rows of ``keys``; unknown keys are ignored. Returns how many were live."""
        rows = self._map.delete(keys)
        self._row_keys[rows] = -1
        return len(rows)

    @property
    def dead_fraction(self) -> float:
        return 0.0 if self._rows == 0 else 1.0 - len(self) / self._rows

    def compact(self) -> None:
        """Copy live rows into the next generation's file; the old file becomes obsolete."""
        live = np.flatnonzero(self._row_keys[: self._rows] >= 0)
        self.generation += 1
        path, out = self._new_file()
        h = hashlib.sha256()
        for start in range(0, len(live), _SCAN_BLOCK):
            assert self._arr is not None
            chunk = np.ascontiguousarray(self._arr[live[start : start + _SCAN_BLOCK]]).tobytes()
            h.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
        # the old file is left to the stray sweep: others may still map its prefix
        self.close_file()
        self._path, self._fh, self._owned = path, out, True
        keys = self._row_keys[live].copy()
        if self._half is not None:
            self._half = self._half[live]
        self._rows = len(live)
        self._row_keys = keys
        self._map.rebuild(keys)
        self.segments = (
            [{"offset": 0, "length": self._rows * self.row_bytes, "sha256": h.hexdigest()}]
            if self._rows
            else []
        )
        self._arr = None
        self._remap()
        logger.info("compacted originals into %s (%d rows)", path.name, self._rows)

    # ------------------------------------------------------------------ reads

    def get(self, keys: npt.ArrayLike) -> Vectors:
        """Original vectors of ``keys`` (n, dim); raises :class:`NotFoundError` for absent keys."""
        rows = self._map.lookup(keys)
        if np.any(rows < 0):
            missing = np.asarray(keys, dtype=np.int64)[rows < 0]
            raise NotFoundError(f"{len(missing)} keys not in the index, e.g. {int(missing[0])}")
        if self._arr is None:
            return np.empty((0, self.dim), dtype=np.float32)
        return self._arr[rows]

    def rescore(self, queries: Vectors, result: SearchResult, k: int, metric: str) -> SearchResult:
        """Exact scores of each query's candidates, re-ranked to the top-k."""
        cand = result.keys
        nq, c = cand.shape
        if self._arr is None or c == 0:
            return topk(result.scores, cand, k)
        if nq == 1 and metric != "l2":
            hint = None if result.labels is None else result.labels[0]
            return self._rescore_one(queries[0], cand[0], hint, k)
        rows = self.rows_of(cand, result.labels)
        valid = rows >= 0
        vecs = self._rescore_rows(np.where(valid, rows, 0))  # (nq, c, dim): candidates only
        scores = rowwise_similarity(queries, vecs, metric)
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        return topk(scores, np.where(valid, cand, -1), k)

    def _rescore_rows(self, rows: npt.NDArray[np.int64]) -> Vectors:
        """The rows rescoring reads: the f16 copy when kept (no page of the mapping touched),
        else the mapped originals."""
        if self._half is not None:
            return self._half[rows].astype(np.float32)
        assert self._arr is not None
        return self._arr[rows]

    def _rescore_one(self, query: Vectors, cand: Keys, hint: Keys | None, k: int) -> SearchResult:
        # The single-query hot path: a few dozen candidates, so every numpy call counts.
        assert self._arr is not None
        rows = self.rows_of(cand, hint)
        if rows.min() < 0:  # padding, or a candidate removed since the search
            ok = rows >= 0
            rows, cand = rows[ok], cand[ok]
        scores = self._rescore_rows(rows) @ query  # GEMV over the candidates' rows only
        order = np.argsort(-scores, kind="stable")[:k]
        if len(order) == k:
            return SearchResult(cand[order][None, :], scores[order][None, :])
        keys = np.full((1, k), -1, dtype=np.int64)
        out = np.full((1, k), -np.inf, dtype=np.float32)
        keys[0, : len(order)] = cand[order]
        out[0, : len(order)] = scores[order]
        return SearchResult(keys, out)

    def scan(
        self, queries: Vectors, k: int, metric: str, allowed: Keys | None = None
    ) -> SearchResult:
        """Exact top-k over all live rows, or over the live rows of ``allowed``."""
        nq = len(queries)
        result = empty_result(nq, k)
        if self._arr is None or k <= 0:
            return result
        if allowed is not None:
            rows = self._map.lookup(allowed)
            rows = sorted_unique_keys(rows[rows >= 0])  # O(n) when already sorted
            for start in range(0, len(rows), _SCAN_BLOCK):
                block = rows[start : start + _SCAN_BLOCK]
                scores = similarity(queries, self._arr[block], metric)
                part = topk(scores, self._row_keys[block], k)
                result = part if start == 0 else merge_topk(result, part, k)
            return result
        for start in range(0, self._rows, _SCAN_BLOCK):
            stop = min(start + _SCAN_BLOCK, self._rows)
            scores = similarity(queries, self._arr[start:stop], metric)
            block_keys = self._row_keys[start:stop]
            scores[:, block_keys < 0] = -np.inf  # dead rows
            result = merge_topk(result, topk(scores, block_keys, k), k)
        return result

    # ------------------------------------------------------------------ persistence

    def sync(self) -> dict[str, object]:
        """fsync the data file and checksum the rows appended since the last call.

        Returns the manifest entry describing the durable prefix.
        """
        end = self._rows * self.row_bytes
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        hashed = sum(int(s["length"]) for s in self.segments)  # type: ignore[call-overload]
        if end > hashed:
            assert self._path is not None
            digest = hash_file_range(self._path, hashed, end - hashed)
            self.segments.append({"offset": hashed, "length": end - hashed, "sha256": digest})
        return {
            "file": self.file_name,
            "generation": self.generation,
            "rows": self._rows,
            "segments": [dict(s) for s in self.segments],
        }

    def save_rows(self, path: Path) -> Path:
        with open(path, "wb") as fh:
            np.save(fh, self._row_keys[: self._rows])
        return path

    def load(self, entry: dict[str, object], rows_path: Path) -> None:
        """Adopt a checkpointed state (checksums already verified) and drop any later tail."""
        self.generation = int(entry["generation"])  # type: ignore[call-overload]
        self._rows = int(entry["rows"])  # type: ignore[call-overload]
        self.segments = [dict(s) for s in entry["segments"]]  # type: ignore[attr-defined]
        row_keys = np.load(rows_path).astype(np.int64)
        if len(row_keys) != self._rows:
            raise ValueError(f"{rows_path.name} has {len(row_keys)} rows, expected {self._rows}")
        self._row_keys = row_keys
        self._map.rebuild(row_keys)
        # Rows past the checkpointed prefix (another process's appends, or a crashed one's
        # tail) are ignored, never truncated: the op log replays what they held.
        self._path = self.directory / str(entry["file"]) if entry["file"] else None
        self._owned = False
        if self._rows and (self._path is None or not self._path.exists()):
            raise FileNotFoundError(self._path)
        self._remap()
        if self._half is not None:
            self._half = self._read_half()

    def _read_half(self) -> npt.NDArray[np.float16]:
        """The f16 copy of every row, read with plain file reads in blocks (through the page
        cache, not the mapping: the f32 rows are not made resident in this process)."""
        half = np.empty((self._rows, self.dim), dtype=np.float16)
        if self._rows == 0 or self._path is None:
            return half
        with open(self._path, "rb") as fh:
            for start in range(0, self._rows, _SCAN_BLOCK):
                n = min(_SCAN_BLOCK, self._rows - start)
                block = np.fromfile(fh, dtype="<f4", count=n * self.dim)
                half[start : start + n] = block.reshape(n, self.dim)
        return half

    def close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def close(self) -> None:
        self.close_file()
        self._arr = None
