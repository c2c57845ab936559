"""faiss HNSW engine: IndexHNSWFlat / IndexHNSWSQ (fp16, 8bit) / IndexBinaryHNSW (sign bits).

Labels are faiss's sequential positions; we keep our own ``label → key`` array and a sorted
``key → label`` map (instead of IndexIDMap2) so a filter's allowed keys become a label bitmap with
one vectorised lookup. HNSW cannot delete: removed labels become tombstones, excluded at search
time by an ``IDSelectorBitmap`` of live labels, and :meth:`compact` rebuilds without them (run
automatically once tombstones pass :data:`AUTO_COMPACT_FRACTION`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgerag._optional import require
from edgerag.index._util import KeyMap, as_queries, empty_result, sorted_unique_keys
from edgerag.index.base import AnnEngine, IndexConfig
from edgerag.index.quantize import hamming_to_score
from edgerag.types import Keys, SearchResult, Vectors

logger = logging.getLogger(__name__)

_OMP = threading.local()

AUTO_COMPACT_FRACTION = 0.2
# Below this many queries one OpenMP thread is fastest: faiss parallelises HNSW search over
# queries only, so extra threads add fork/join cost to a single query and nothing else.
PARALLEL_MIN_QUERIES = 4
PARALLEL_MIN_ADD = 2000  # vectors per extra thread when adding
# faiss QT_8bit trains per-dimension min/max; widen it so later vectors are not clipped.
SQ_RANGE_MARGIN = 0.05
# Retrain the scalar quantizer while it was trained on few vectors and the index has grown this
# much since: a first batch of 10 vectors must not fix the ranges for a million. Retraining
# re-encodes the storage only (O(n)); the graph stays.
RETRAIN_GROWTH = 4
RETRAIN_MAX_TRAINED = 10_000
# A filtered exact scan copies the allowed rows' codes into a scratch index. Scratches up to
# this size are kept (one per core) for the next scans: a fresh 5 MB buffer (10,000 rows at
# 512-d) page-faulted on every scan, ~1.2 ms of a 3.4 ms scan at 1M.
SCRATCH_KEEP_BYTES = 8 << 20
# From this many allowed rows the gather runs in two halves on two threads: it is bound by
# cache and TLB misses on random rows, which two threads overlap (10,000 rows at 1M: 1.46 →
# 0.46 ms). The scan itself stays on one thread (two halves side by side measured slower).
PARALLEL_GATHER_MIN = 4_096
# A repeated filter (the same allowed keys, no write to this engine since) scans the codes it
# gathered last time, as the retriever's FilterCache keeps the allowed keys of a repeated
# filter: at 1M × 512 the key lookup and the gather of 10,000 rows are ~1.1 ms of a 1.7 ms scan
# with sequential keys, ~3.5 ms of 5 with an engine's hashed ones. This is the bytes kept
# across such sets; each is at most SCRATCH_KEEP_BYTES. Any write drops them all.
GATHERED_KEEP_BYTES = 16 << 20
# A set is kept from its second scan on (among the last this many sets scanned): filters that
# never repeat keep reusing one warm scratch instead of cycling cold kept buffers (keeping
# every set made such scans 0.2–0.3 ms slower at 1M).
GATHERED_SEEN = 64
# A filtered graph search maps its allowed keys to a label bitmap: for an engine's hashed keys a
# binary search per key (100,000 keys of a 1M map: ~4 ms, more than the search). The bitmaps
# of this many recent allowed sets are kept (n / 8 bytes each) until the next write.
KEPT_BITMAPS = 8
_GATHER_POOL: ThreadPoolExecutor | None = None
_GATHER_LOCK = threading.Lock()


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _gather(codes: npt.NDArray[np.uint8], rows: npt.NDArray[np.int64], out: Any) -> None:
    """``out[:] = codes[rows]``, the second half on a helper thread for large sets (numpy
    releases the GIL while it copies). mode="clip": with the default "raise" numpy buffers
    ``out`` (measured 2x slower); the rows come from our own map, so they are in range."""
    global _GATHER_POOL
    if len(rows) < PARALLEL_GATHER_MIN or _cores() < 2:
        np.take(codes, rows, axis=0, out=out, mode="clip")
        return
    with _GATHER_LOCK:
        if _GATHER_POOL is None:
            _GATHER_POOL = ThreadPoolExecutor(1, thread_name_prefix="faiss-gather")
    half = len(rows) // 2
    second = _GATHER_POOL.submit(np.take, codes, rows[half:], 0, out[half:], "clip")
    try:
        np.take(codes, rows[:half], axis=0, out=out[:half], mode="clip")
    finally:
        second.result()


@dataclass(eq=False)
class _Gathered:
    """A filter's allowed keys, their labels, and a scratch index holding their codes.

    ``readers`` and ``state`` are guarded by the engine's scratch lock. A "fresh" set belongs
    to the scan that gathered it; once "kept" it is shared read-only; "dropped" (evicted, or a
    write) returns its scratch to the free list when its last reader is done, never before:
    the next scan taking it would overwrite codes a scan is still reading.
    """

    allowed: Keys
    labels: npt.NDArray[np.int64]
    kind: tuple[Any, ...]  # the scratch's codec (see _take_scratch)
    scratch: Any
    nbytes: int
    readers: int = 1
    state: str = "fresh"

    def matches(self, allowed: Keys) -> bool:
        return _same_keys(self.allowed, allowed)


def _same_keys(a: Keys, b: Keys) -> bool:
    """Whether two key arrays are equal (cheap ends first: most differ there)."""
    return (
        len(a) == len(b)
        and (len(a) == 0 or (a[0] == b[0] and a[-1] == b[-1]))
        and bool(np.array_equal(a, b))
    )


class FaissEngine(AnnEngine):
    """faiss HNSW with tombstones and native filtering through ``SearchParametersHNSW``."""

    name = "faiss"
    supports_delete = True  # via tombstones + compaction
    supports_filter = True

    def __init__(self, dim: int, metric: str, config: IndexConfig) -> None:
        super().__init__(dim, metric, config)
        self.faiss: Any = require("faiss")
        self.binary = config.quantization == "binary"
        self.vector_source: Callable[[Keys], Vectors] | None = None
        self._params_cache: dict[int, Any] = {}
        # scratch indexes of filtered scans, kept for the next ones (see SCRATCH_KEEP_BYTES)
        self._scratches: list[tuple[tuple[Any, ...], Any]] = []
        self._scratch_lock = threading.Lock()
        self._gathered: list[_Gathered] = []  # codes kept for repeated sets, most recent last
        self._seen: deque[tuple[int, ...]] = deque(maxlen=GATHERED_SEEN)  # sets scanned lately
        self._bitmaps: list[tuple[Keys, npt.NDArray[np.uint8]]] = []  # see KEPT_BITMAPS
        self._live_bitmap: npt.NDArray[np.uint8] | None = None  # labels not tombstoned
        self._reset_state()

    # ---------------------------------------------------------------- construction

    def _new_index(self) -> Any:
        f, cfg = self.faiss, self.config
        mt = f.METRIC_L2 if self.metric == "l2" else f.METRIC_INNER_PRODUCT
        q = cfg.quantization
        if q == "binary":
            index = f.IndexBinaryHNSW(self._nbits, cfg.connectivity)
        elif q == "f32":
            index = f.IndexHNSWFlat(self.dim, cfg.connectivity, mt)
        else:
            qt = f.ScalarQuantizer.QT_fp16 if q == "f16" else f.ScalarQuantizer.QT_8bit
            index = f.IndexHNSWSQ(self.dim, qt, cfg.connectivity, mt)
            storage = f.downcast_index(index.storage)
            storage.sq.rangestat_arg = SQ_RANGE_MARGIN
        index.hnsw.efConstruction = cfg.ef_construction
        index.hnsw.efSearch = cfg.ef_search
        return index

    def _reset_state(self) -> None:
        self._nbits = ((self.dim + 7) // 8) * 8
        self._index = self._new_index()
        self._label_keys = np.empty(0, dtype=np.int64)  # label → key, -1 = tombstone
        self._n_labels = 0
        self._map = KeyMap()
        self._tombstones = 0
        self._trained_on = 0
        self._forget_derived()

    def _forget_derived(self) -> None:
        """Forget what is derived from the labels, keys and codes, as they changed: the live
        bitmap, and the codes and bitmaps kept for repeated sets (see GATHERED_KEEP_BYTES and
        KEPT_BITMAPS)."""
        self._live_bitmap = None
        with self._scratch_lock:
            for gathered in self._gathered:
                self._drop_locked(gathered)
            self._gathered = []
            self._bitmaps = []

    def _set_threads(self, n: int) -> None:
        # OpenMP keeps the thread count per calling OS thread: cache it per thread, or a
        # server's worker threads would search with the default (all cores) and oversubscribe.
        if getattr(_OMP, "threads", None) != n:
            self.faiss.omp_set_num_threads(n)
            _OMP.threads = n

    def _encode(self, vectors: Vectors) -> npt.NDArray[Any]:
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        return np.packbits(v > 0, axis=1) if self.binary else v

    # ---------------------------------------------------------------- mutation

    def __len__(self) -> int:
        return len(self._map)

    @property
    def tombstones(self) -> int:
        return self._tombstones

    def add(self, keys: Keys, vectors: Vectors) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) == 0:
            return
        if len(vectors) != len(keys):
            raise ValueError("keys and vectors differ in length")
        codes = self._encode(vectors)
        # graph construction parallelises over the batch; for small batches the OpenMP fork/join
        # (and spinning on a busy 2-core box) costs more than it saves
        self._set_threads(min(_cores(), max(1, len(keys) // PARALLEL_MIN_ADD)))
        if not self.binary and not self._index.is_trained:
            self._index.train(codes)
            self._trained_on = len(codes)
        self._index.add(codes)
        labels = np.arange(self._n_labels, self._n_labels + len(keys), dtype=np.int64)
        self._grow_labels(self._n_labels + len(keys))
        self._label_keys[labels] = keys
        self._n_labels += len(keys)
        self._map.insert(keys, labels)
        if self._should_retrain():
            self._retrain()
        self._forget_derived()

    def _should_retrain(self) -> bool:
        return (
            self.config.quantization == "int8"
            and self.vector_source is not None
            and 0 < self._trained_on < RETRAIN_MAX_TRAINED
            and len(self) >= RETRAIN_GROWTH * self._trained_on
        )

    def _retrain(self) -> None:
        """Retrain the SQ ranges on every vector and re-encode the storage in label order."""
        assert self.vector_source is not None
        n = self._n_labels
        x = np.empty((n, self.dim), dtype=np.float32)
        live = np.flatnonzero(self._label_keys[:n] >= 0)
        dead = np.flatnonzero(self._label_keys[:n] < 0)
        x[live] = self.vector_source(self._label_keys[live])
        if len(dead):  # tombstones are never returned; their decoded codes are good enough
            x[dead] = self._index.reconstruct_batch(dead)
        storage = self.faiss.downcast_index(self._index.storage)
        storage.train(x)
        storage.reset()
        storage.add(x)  # same order → same labels; the HNSW graph keeps referring to them
        self._trained_on = n
        logger.info("retrained faiss scalar quantizer on %d vectors", n)

    def _grow_labels(self, need: int) -> None:
        if len(self._label_keys) >= need:
            return
        grown = np.full(max(need, 2 * len(self._label_keys), 1024), -1, dtype=np.int64)
        grown[: self._n_labels] = self._label_keys[: self._n_labels]
        self._label_keys = grown

    def remove(self, keys: Keys) -> None:
        labels = self._map.delete(keys)
        if len(labels) == 0:
            return
        self._label_keys[labels] = -1
        self._tombstones += len(labels)
        self._forget_derived()
        if self._tombstones > AUTO_COMPACT_FRACTION * max(self._n_labels, 1):
            self.compact()

    def compact(self) -> None:
        """Rebuild the graph from live vectors (from ``vector_source`` when set, else decoded)."""
        if self._tombstones == 0:
            return
        live = np.flatnonzero(self._label_keys[: self._n_labels] >= 0)
        keys = self._label_keys[live].copy()
        from_source = self.vector_source is not None
        vectors = self.vector_source(keys) if self.vector_source else self._reconstruct(live)
        logger.info("compacting faiss index: %d live, %d tombstones", len(live), self._tombstones)
        self._reset_state()
        if len(keys) == 0:
            return
        if self.binary and not from_source:  # reconstructed codes are packed bits already
            self._index.add(vectors)
            self._grow_labels(len(keys))
            self._label_keys[: len(keys)] = keys
            self._n_labels = len(keys)
            self._map.insert(keys, np.arange(len(keys)))
        else:
            self.add(keys, vectors)

    def _reconstruct(self, labels: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        if self.binary:
            storage = self.faiss.downcast_IndexBinary(self._index.storage)
            out = np.empty((len(labels), self._nbits // 8), dtype=np.uint8)
            for i, lab in enumerate(labels):  # only on compaction without a vector source
                out[i] = storage.reconstruct(int(lab))
            return out
        return self._index.reconstruct_batch(labels)

    # ---------------------------------------------------------------- search

    def _bitmap(self, labels: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        mask = np.zeros(self._n_labels, dtype=bool)
        mask[labels] = True
        # IDSelectorBitmap tests bit (i & 7) of byte i >> 3: little bit order
        return np.packbits(mask, bitorder="little")

    def _live_labels(self, keys: Keys) -> npt.NDArray[np.int64]:
        """The labels of those ``keys`` that are here, in the keys' order (unique when the
        keys are)."""
        labels = self._map.lookup(keys)
        return labels[labels >= 0]

    def _allowed_bitmap(self, allowed: Keys) -> npt.NDArray[np.uint8] | None:
        """The label bitmap of ``allowed`` (None when none of its keys is here), kept for the
        next search with the same keys until a write."""
        with self._scratch_lock:
            for i, (keys, bitmap) in enumerate(self._bitmaps):
                if _same_keys(keys, allowed):
                    self._bitmaps.append(self._bitmaps.pop(i))
                    return bitmap
        labels = self._live_labels(allowed)
        if len(labels) == 0:
            return None
        bitmap = self._bitmap(labels)
        with self._scratch_lock:
            self._bitmaps = [*self._bitmaps[-(KEPT_BITMAPS - 1) :], (allowed.copy(), bitmap)]
        return bitmap

    def _plain_params(self, ef: int) -> Any:
        # Unfiltered parameters are immutable once built: cache one per efSearch value so the
        # single-query path does not pay for a SWIG object per call.
        params = self._params_cache.get(ef)
        if params is None:
            params = self.faiss.SearchParametersHNSW(efSearch=ef)
            if len(self._params_cache) < 16:
                self._params_cache[ef] = params
        return params

    def search(
        self,
        queries: Vectors,
        k: int,
        allowed: np.ndarray | None = None,
        ef: int | None = None,
        **_: object,
    ) -> SearchResult:
        f = self.faiss
        q = as_queries(queries, self.dim)
        nq = len(q)
        if len(self) == 0 or k <= 0:
            return empty_result(nq, k)
        ef = max(ef or self.config.ef_search, k)
        bitmap = None
        if allowed is not None:
            bitmap = self._allowed_bitmap(np.asarray(allowed, dtype=np.int64))
            if bitmap is None:
                return empty_result(nq, k)
        elif self._tombstones:
            if self._live_bitmap is None:
                self._live_bitmap = self._bitmap(np.flatnonzero(self._label_keys >= 0))
            bitmap = self._live_bitmap
        sel = None
        if bitmap is not None:
            sel = f.IDSelectorBitmap(self._n_labels, f.swig_ptr(bitmap))
            params = f.SearchParametersHNSW(sel=sel, efSearch=ef)
        else:
            params = self._plain_params(ef)
        self._set_threads(1 if nq < PARALLEL_MIN_QUERIES else _cores())
        x = np.packbits(q > 0, axis=1) if self.binary else q
        dist, labels_out = self._index.search(x, k, params=params)
        del sel, bitmap  # kept alive until the search returned
        missing = labels_out < 0
        keys = self._label_keys[labels_out]  # -1 labels index the last slot; masked below
        if self.binary:
            scores = hamming_to_score(dist, self.dim)
        elif self.metric == "l2":
            scores = -dist
        else:
            scores = dist
        if missing.any():
            keys[missing] = -1
            scores[missing] = -np.inf
        return SearchResult(keys, scores, labels_out)

    def scan_codes(self, queries: Vectors, k: int, allowed: Keys) -> SearchResult | None:
        """Exact top-k over the engine's own codes of ``allowed`` keys, without the graph.

        A selective filter scanned here reads ``code_size`` bytes per allowed row (512 for
        512-d int8) from one contiguous array instead of gathering 2 KB f32 rows from the
        originals; the caller rescores the top of it on the originals. The allowed rows'
        codes are copied into a scratch flat index of the same codec, so faiss's SIMD scorer
        does the work. None when this engine keeps no flat codes (binary).
        """
        if self.binary or len(self) == 0:
            return None
        q = as_queries(queries, self.dim)
        allowed = sorted_unique_keys(allowed)
        if k <= 0:
            return empty_result(len(q), k)
        gathered = self._gathered_for(allowed) or self._gather_allowed(allowed)
        if gathered is None:
            return empty_result(len(q), k)
        labels = gathered.labels
        self._set_threads(1 if len(q) < PARALLEL_MIN_QUERIES else _cores())
        try:  # faiss's search is const: scans of one kept set may run side by side
            dist, idx = gathered.scratch.search(q, min(k, len(labels)))
        finally:
            self._release(gathered)
        missing = idx < 0
        found = labels[np.where(missing, 0, idx)]
        keys = self._label_keys[found]
        scores = -dist if self.metric == "l2" else dist
        keys[missing], scores[missing] = -1, -np.inf
        empty = empty_result(len(q), k)
        out = SearchResult(empty.keys, empty.scores, np.full((len(q), k), -1, dtype=np.int64))
        out.keys[:, : keys.shape[1]] = keys
        out.scores[:, : keys.shape[1]] = scores
        out.labels[:, : keys.shape[1]] = np.where(missing, -1, found)
        return out

    def _gathered_for(self, allowed: Keys) -> _Gathered | None:
        """The codes kept for exactly ``allowed`` since the last write, if any (as a reader)."""
        with self._scratch_lock:
            for i, gathered in enumerate(self._gathered):
                if gathered.matches(allowed):
                    self._gathered.append(self._gathered.pop(i))
                    gathered.readers += 1
                    return gathered
        return None

    def _gather_allowed(self, allowed: Keys) -> _Gathered | None:
        """The live rows of ``allowed``: their labels and their codes copied into a scratch
        index of the storage's codec (None when no allowed key is here)."""
        f = self.faiss
        # left in key order: for an engine's hashed keys that is no label order, and sorting
        # (np.unique) cost more than it saved the gather
        labels = self._live_labels(allowed)
        if len(labels) == 0:
            return None
        storage = f.downcast_index(self._index.storage)
        size = storage.code_size
        codes = f.rev_swig_ptr(storage.codes.data(), storage.ntotal * size)
        kind, scratch = self._take_scratch(storage)
        # gather the allowed rows' codes straight into the scratch index's buffer
        scratch.codes.resize(len(labels) * size)
        buf = f.rev_swig_ptr(scratch.codes.data(), len(labels) * size).reshape(-1, size)
        _gather(codes.reshape(storage.ntotal, size), labels, buf)
        scratch.ntotal = len(labels)
        return _Gathered(allowed.copy(), labels, kind, scratch, len(labels) * size)

    def _release(self, gathered: _Gathered) -> None:
        """A scan is done with ``gathered``: keep a fresh set for the next scan of the same
        keys (the most recent sets within ``GATHERED_KEEP_BYTES``), recycle a dropped one."""
        with self._scratch_lock:
            gathered.readers -= 1
            if gathered.state == "fresh":
                self._keep_locked(gathered)
            elif gathered.state == "dropped" and gathered.readers == 0:
                self._give_back_locked(gathered.kind, gathered.scratch, gathered.nbytes)

    def _keep_locked(self, gathered: _Gathered) -> None:
        too_big = gathered.nbytes > min(SCRATCH_KEEP_BYTES, GATHERED_KEEP_BYTES)
        if too_big or not self._seen_before(gathered.allowed):
            self._drop_locked(gathered)
            return
        if any(g.matches(gathered.allowed) for g in self._gathered):
            self._drop_locked(gathered)  # another scan gathered the same keys meanwhile
            return
        gathered.state = "kept"
        kept, total = [gathered], gathered.nbytes
        for older in reversed(self._gathered):
            total += older.nbytes
            if total <= GATHERED_KEEP_BYTES:
                kept.append(older)
            else:
                self._drop_locked(older)
        self._gathered = kept[::-1]

    def _seen_before(self, allowed: Keys) -> bool:
        """Whether a set like ``allowed`` was scanned lately (remembered from now on). A
        fingerprint, not the keys: a false match only keeps a set once too early."""
        a = allowed
        mark = (len(a), int(a[0]), int(a[-1]), int(a[:: max(1, len(a) // 64)].sum()))
        if mark in self._seen:
            return True
        self._seen.append(mark)
        return False

    def _drop_locked(self, gathered: _Gathered) -> None:
        gathered.state = "dropped"
        if gathered.readers == 0:
            self._give_back_locked(gathered.kind, gathered.scratch, gathered.nbytes)

    def _take_scratch(self, storage: Any) -> tuple[tuple[Any, ...], Any]:
        """A scratch flat index with ``storage``'s codec: a kept one when free, else new."""
        f = self.faiss
        mt = self._index.metric_type
        sq = isinstance(storage, f.IndexScalarQuantizer)
        kind = (sq, storage.sq.qtype if sq else None, mt)
        with self._scratch_lock:
            kept = next((i for i, (k, _) in enumerate(self._scratches) if k == kind), None)
            scratch = self._scratches.pop(kept)[1] if kept is not None else None
        if scratch is None:
            scratch = (
                f.IndexScalarQuantizer(self.dim, kind[1], mt) if sq else f.IndexFlat(self.dim, mt)
            )
        if sq:  # the ranges as trained now (a retrain changes them): the graph's own scores
            scratch.sq = storage.sq
            scratch.is_trained = True
        return kind, scratch

    def _give_back_locked(self, kind: tuple[Any, ...], scratch: Any, used_bytes: int) -> None:
        """Keep the scratch for the next scan: at most one per core (scans running at once),
        and not one whose buffer grew past ``SCRATCH_KEEP_BYTES``."""
        if used_bytes <= SCRATCH_KEEP_BYTES and len(self._scratches) < _cores():
            self._scratches.append((kind, scratch))

    # ---------------------------------------------------------------- persistence

    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        index_path = directory / "faiss.index"
        labels_path = directory / "faiss.labels.npy"
        if self.binary:
            self.faiss.write_index_binary(self._index, str(index_path))
        else:
            self.faiss.write_index(self._index, str(index_path))
        with open(labels_path, "wb") as fh:
            np.save(fh, self._label_keys[: self._n_labels])
        return [index_path, labels_path]

    def load(self, directory: Path) -> None:
        index_path = str(directory / "faiss.index")
        read = self.faiss.read_index_binary if self.binary else self.faiss.read_index
        self._index = read(index_path)
        self._label_keys = np.load(directory / "faiss.labels.npy").astype(np.int64)
        self._n_labels = len(self._label_keys)
        if self._index.ntotal != self._n_labels:
            raise ValueError(
                f"faiss index holds {self._index.ntotal} vectors, labels file {self._n_labels}"
            )
        self._map = KeyMap()
        self._map.rebuild(self._label_keys)
        self._tombstones = int((self._label_keys < 0).sum())
        self._trained_on = RETRAIN_MAX_TRAINED  # don't retrain a loaded index on growth
        self._forget_derived()

    def close(self) -> None:
        self._index = None
