"""Small shared pieces of the index package: vectorised key→row maps, top-k, a RW lock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from edgerag.types import Keys, SearchResult

logger = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]


# A key range at most this many times the key count is also mapped through one direct array.
DENSE_MAX_SPREAD = 4
_I32_MAX = np.iinfo(np.int32).max


class KeyMap:
    """int64 key → int64 row, as two parallel sorted arrays.

    A Python dict would cost ~100 ns per key per lookup; filters of 100k allowed keys must map
    to rows in a few milliseconds, so lookups are ``np.searchsorted`` (fast for sorted needles)
    and inserts are merges (O(n) memmove per batch, not per key).

    An engine's item keys are 63-bit hashes of (document id, position) (``types.item_key``), so
    in a collection they are sparse and every lookup is a binary search: 10,000 sorted keys in a
    1M map take ~2 ms on a 2-core VM. A bucket table over the keys' top bits (they are spread
    evenly) measured faster only for 5k–25k keys in a 1M map and slower elsewhere, so it is not
    kept. Dense ranges (sequential keys, as benchmarks and tests use: a range at most
    ``DENSE_MAX_SPREAD`` × the count) are mapped by a direct array of rows by ``key - base``
    (int32, -1 = absent, grown geometrically as keys are added) instead: one gather. Built on
    the first lookup after a change it cannot follow.
    """

    def __init__(self) -> None:
        self._keys: I64 = np.empty(0, dtype=np.int64)
        self._rows: I64 = np.empty(0, dtype=np.int64)
        # (base, rows by key - base) published as one tuple: lookups run under a shared read
        # lock and may build it concurrently, so a reader never sees half of it
        self._dense: tuple[int, npt.NDArray[np.int32]] | None = None
        self._dense_valid = False  # False: (re)decide on the next lookup

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> I64:
        """Sorted live keys (a view; do not modify)."""
        return self._keys

    def rows(self) -> I64:
        """Rows in the order of :meth:`keys`."""
        return self._rows

    def lookup(self, keys: npt.ArrayLike) -> I64:
        """Rows of ``keys``; -1 where a key is absent."""
        k = np.asarray(keys, dtype=np.int64)
        if len(self._keys) == 0 or k.size == 0:
            return np.full(k.shape, -1, dtype=np.int64)
        direct = self._direct()
        if direct is not None:
            base, dense = direct
            idx = k - base
            inside = (idx >= 0) & (idx < len(dense))
            if inside.all():
                return dense[idx].astype(np.int64)
            return np.where(inside, dense[np.where(inside, idx, 0)], -1).astype(np.int64)
        pos = np.searchsorted(self._keys, k)
        np.minimum(pos, len(self._keys) - 1, out=pos)
        found = self._keys[pos] == k
        return np.where(found, self._rows[pos], -1)

    def insert(self, keys: npt.ArrayLike, rows: npt.ArrayLike) -> None:
        """Add keys (which must be absent and unique) mapping to ``rows``."""
        k = np.asarray(keys, dtype=np.int64)
        r = np.asarray(rows, dtype=np.int64)
        if k.size == 0:
            return
        order = np.argsort(k, kind="stable")
        k, r = k[order], r[order]
        pos = np.searchsorted(self._keys, k)
        self._keys = np.insert(self._keys, pos, k)
        self._rows = np.insert(self._rows, pos, r)
        self._dense_insert(k, r)

    def delete(self, keys: npt.ArrayLike) -> I64:
        """Remove keys; returns the rows they had (absent keys are skipped)."""
        k = np.unique(np.asarray(keys, dtype=np.int64))
        if k.size == 0 or len(self._keys) == 0:
            return np.empty(0, dtype=np.int64)
        pos = np.searchsorted(self._keys, k)
        pos = pos[pos < len(self._keys)]
        pos = pos[np.isin(self._keys[pos], k)]
        rows = self._rows[pos].copy()
        if self._dense_valid and self._dense is not None:
            base, dense = self._dense
            dense[self._keys[pos] - base] = -1
        self._keys = np.delete(self._keys, pos)
        self._rows = np.delete(self._rows, pos)
        return rows

    def rebuild(self, row_keys: I64) -> None:
        """Rebuild from a row → key array where -1 marks a dead row."""
        live = np.flatnonzero(row_keys >= 0)
        order = np.argsort(row_keys[live], kind="stable")
        self._keys = row_keys[live][order].astype(np.int64)
        self._rows = live[order].astype(np.int64)
        self._dense_valid = False

    def _direct(self) -> tuple[int, npt.NDArray[np.int32]] | None:
        """(base, direct array) when the keys are dense enough, else None."""
        if self._dense_valid:
            return self._dense
        direct = None
        n = len(self._keys)
        if n and int(self._rows.max()) <= _I32_MAX:
            lo, hi = int(self._keys[0]), int(self._keys[-1])
            if hi - lo + 1 <= DENSE_MAX_SPREAD * n:
                dense = np.full(hi - lo + 1, -1, dtype=np.int32)
                dense[self._keys - lo] = self._rows
                direct = (lo, dense)
        self._dense, self._dense_valid = direct, True
        return direct

    def _dense_insert(self, keys: I64, rows: I64) -> None:
        """Follow an insert of sorted ``keys`` in the direct array, growing it by half when
        they run past its end; anything else (a key below the base, a sparse range, a huge
        row) is decided again on the next lookup."""
        if not self._dense_valid or self._dense is None:
            self._dense_valid = False
            return
        base, dense = self._dense
        idx = keys - base
        need = int(idx[-1]) + 1
        if idx[0] < 0 or need > DENSE_MAX_SPREAD * len(self._keys) or rows.max() > _I32_MAX:
            self._dense_valid = False
            return
        if need > len(dense):
            grown = np.full(max(need, len(dense) * 3 // 2), -1, dtype=np.int32)
            grown[: len(dense)] = dense
            dense = grown
        dense[idx] = rows
        self._dense = (base, dense)


def sorted_unique_keys(keys: npt.ArrayLike) -> Keys:
    """``keys`` as a sorted unique contiguous int64 array (O(n) when already so)."""
    k = np.ascontiguousarray(keys, dtype=np.int64).ravel()
    if len(k) < 2 or bool(np.all(k[1:] > k[:-1])):
        return k
    return np.unique(k)


def topk(scores: npt.NDArray[np.float32], keys: I64, k: int) -> SearchResult:
    """Top-k per row of ``scores`` (nq, n) whose columns are ``keys`` (n,) or per-row (nq, n).

    ``-inf`` scores count as missing; results are padded with key -1 / score -inf.
    """
    nq, n = scores.shape
    out_k = np.full((nq, k), -1, dtype=np.int64)
    out_s = np.full((nq, k), -np.inf, dtype=np.float32)
    if n == 0 or k == 0:
        return SearchResult(out_k, out_s)
    kk = min(k, n)
    rows = np.arange(nq)[:, None]
    # a full sort of a few dozen candidates beats partition + sort (the rescoring case)
    if n <= 128 or kk == n:
        idx = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
    else:
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-scores[rows, part], axis=1, kind="stable")
        idx = part[rows, order]
    top_s = scores[rows, idx]
    top_k = keys[idx] if keys.ndim == 1 else keys[rows, idx]
    valid = (top_s > -np.inf) & (top_k >= 0)
    out_k[:, :kk] = np.where(valid, top_k, -1)
    out_s[:, :kk] = np.where(valid, top_s, -np.inf)
    return SearchResult(out_k, out_s)


def merge_topk(a: SearchResult, b: SearchResult, k: int) -> SearchResult:
    """Merge two batch results (per query) into one top-k."""
    return topk(
        np.concatenate([a.scores, b.scores], axis=1),
        np.concatenate([a.keys, b.keys], axis=1),
        k,
    )


def empty_result(nq: int, k: int) -> SearchResult:
    return SearchResult(
        np.full((nq, k), -1, dtype=np.int64), np.full((nq, k), -np.inf, dtype=np.float32)
    )


def as_queries(queries: npt.ArrayLike, dim: int) -> npt.NDArray[np.float32]:
    """Queries as a C-contiguous float32 (nq, dim) array (1-D input is one query)."""
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"queries must have shape (nq, {dim}), got {q.shape}")
    return np.ascontiguousarray(q)


class RWLock:
    """Many readers or one writer; a waiting writer blocks new readers (no writer starvation).

    ``read()``/``write()`` return reusable guard objects rather than generator-based context
    managers: a search takes the read lock once per query, and a generator costs more than the
    acquire itself.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._read_guard = _Guard(self._acquire_read, self._release_read)
        self._write_guard = _Guard(self._acquire_write, self._release_write)

    def read(self) -> _Guard:
        return self._read_guard

    def write(self) -> _Guard:
        return self._write_guard

    def _acquire_read(self) -> None:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def _release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def _acquire_write(self) -> None:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True

    def _release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()


class _Guard:
    """A stateless context manager calling ``enter``/``exit`` (the state lives in the lock)."""

    __slots__ = ("_enter", "_exit")

    def __init__(self, enter: Callable[[], None], exit_: Callable[[], None]) -> None:
        self._enter = enter
        self._exit = exit_

    def __enter__(self) -> None:
        self._enter()

    def __exit__(self, *_: object) -> None:
        self._exit()


def in_sorted(values: npt.NDArray[np.int64], allowed_sorted: Keys) -> npt.NDArray[np.bool_]:
    """Elementwise ``values ∈ allowed_sorted`` for a sorted unique array (any shape)."""
    if len(allowed_sorted) == 0:
        return np.zeros(values.shape, dtype=bool)
    pos = np.searchsorted(allowed_sorted, values)
    np.minimum(pos, len(allowed_sorted) - 1, out=pos)
    return allowed_sorted[pos] == values


def keep_allowed(result: SearchResult, allowed_sorted: Keys, k: int) -> tuple[SearchResult, int]:
    """Drop disallowed hits (keeping rank order); returns the top-k and the minimum found."""
    ok = in_sorted(result.keys, allowed_sorted) & (result.keys >= 0)
    # stable sort on "not allowed" moves allowed hits to the front without reordering them
    order = np.argsort(~ok, axis=1, kind="stable")[:, :k]
    keys = np.take_along_axis(result.keys, order, axis=1)
    scores = np.take_along_axis(result.scores, order, axis=1)
    found = np.take_along_axis(ok, order, axis=1)
    keys = np.where(found, keys, -1)
    scores = np.where(found, scores, -np.inf).astype(np.float32)
    if keys.shape[1] < k:
        pad = k - keys.shape[1]
        keys = np.pad(keys, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return SearchResult(keys, scores), int(found.sum(axis=1).min(initial=k))
