"""SpaceIndex: one named vector space = ANN engine + memory-mapped originals + manifest.

Directory layout::

    MANIFEST.json           # last durable checkpoint: config, applied_lsn, counts, checksums
    originals-<gen>.f32     # append-only f32 rows; the manifest checksums its prefix by segments
    ckpt-<gen>/             # engine files + originals row→key array of that checkpoint

Crash safety: a checkpoint writes a *new* ``ckpt-<gen>/`` directory, fsyncs it, then atomically
replaces ``MANIFEST.json`` and only then deletes the previous generation. The originals file is
only appended to past the checkpointed prefix. So a crash at any point leaves the previous
manifest with every file it names intact (stray newer files are removed on open), and anything
else (a truncated/flipped/missing file) fails a size or sha256 check: :meth:`SpaceIndex.open`
raises :class:`IndexCorruptError` and never serves it.

Many processes (server + CLI + cron on one collection): each process's live state is private —
engine files are read into memory, and originals are appended only to a file the process
created (copy on write, see ``originals.py``). A published generation is immutable. Opening and
checkpointing hold an flock on ``.lock`` (:class:`~edgerag.index.locks.DirLock`), exclusive, so
nobody loads a generation while another removes it; a checkpoint never replaces a manifest at
a newer LSN; stray files are removed only when no manifest names them and no live process
holds them.

Thread safety: a readers–writer lock. Any number of ``search``/``get_vectors`` calls run together
(faiss and usearch searches release the GIL); ``upsert``/``remove``/``checkpoint``/``reset`` take
the lock exclusively, because an HNSW graph must not be searched while it is being modified.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgerag.errors import IndexCorruptError
from edgerag.index import create_engine
from edgerag.index._util import (
    RWLock,
    as_queries,
    empty_result,
    keep_allowed,
    sorted_unique_keys,
)
from edgerag.index.base import AnnEngine, IndexConfig
from edgerag.index.locks import LOCK_FILE, DirLock, try_lock_file
from edgerag.index.originals import Originals, hash_file_range
from edgerag.types import Keys, SearchResult, SpaceSpec, Vectors

logger = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
FORMAT_VERSION = 1
# Sign bits alone rank poorly (raw recall@10 0.34 at 100k × 512); 10x candidates rescored on
# the originals give 0.995 there, so binary never rescored fewer than that.
MIN_OVERSAMPLE = {"binary": 10.0}
# Rewrite the originals at checkpoint when this share of its rows is dead.
ORIGINALS_COMPACT_FRACTION = 0.25
# A selective filter's exact scan over engine codes rescores this many candidates per result
# (more than an unfiltered search: a filtered set has no graph pre-ranking, so the codes' own
# ranking error decides alone), and is used only when the set is this many times larger than
# the candidates (smaller sets are cheaper to scan on the originals directly).
EXACT_CODES_OVERSAMPLE = 10.0
EXACT_CODES_MIN_FACTOR = 4
# Post-filter oversampling: rounds of widening before falling back to an exact scan.
MAX_FILTER_ROUNDS = 4


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _manifest_digest(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


class SpaceIndex:
    """The index of one named vector space; see the module docstring for files and locking."""

    def __init__(self, directory: Path, spec: SpaceSpec, config: IndexConfig) -> None:
        """Use :meth:`open`; this only builds an empty in-memory state."""
        self.directory = Path(directory)
        self.spec = spec
        self.config = config
        self.applied_lsn = 0
        self._generation = 0
        self._lock = RWLock()
        self._dir_lock = DirLock(self.directory)
        self._engine = self._new_engine()
        self._originals = self._new_originals()
        # Rows were removed since the last checkpoint: the next one compacts the originals
        # file, so a deleted vector does not stay on disk as a dead row (provable erasure).
        self._erased = False
        # ...and rebuilds the ANN engine, whose saved files keep tombstoned codes (the
        # engine's own erasure cost: see EngineConfig.erase_rebuilds_index).
        self.rebuild_on_erase = True
        self._wire_engine()
        self._rescoring = config.quantization != "f32" and self.oversample > 1

    # ================================================================== lifecycle

    @classmethod
    def open(cls, directory: Path, spec: SpaceSpec, config: IndexConfig) -> SpaceIndex:
        """Open (or create) the space index in ``directory``.

        Raises:
            IndexCorruptError: a manifest or file is missing, truncated, fails its checksum, or
                was written for another engine/quantization/dim/metric.
        """
        self = cls(directory, spec, config)
        if not self.directory.exists():
            return self
        with self._dir_lock.hold(exclusive=True):
            self._load()
        return self

    @classmethod
    def empty(cls, directory: Path, spec: SpaceSpec, config: IndexConfig) -> SpaceIndex:
        """An empty index that ignores what ``directory`` holds (a rebuild publishes over it)."""
        return cls(directory, spec, config)

    def _load(self) -> None:
        directory, spec = self.directory, self.spec
        manifest_path = directory / MANIFEST
        if not manifest_path.exists():
            self._open_without_manifest()
            return
        manifest = self._read_manifest(manifest_path)
        self._verify_files(manifest)
        ckpt = directory / manifest["checkpoint"]
        try:
            self._engine.load(ckpt)
            self._originals.load(manifest["originals"], ckpt / "originals.rows.npy")
        except IndexCorruptError:
            raise
        except Exception as exc:  # faiss/usearch/numpy readers raise anything on bad bytes
            raise IndexCorruptError(f"{ckpt}: cannot load index files: {exc}") from exc
        if len(self._engine) != manifest["count"] or len(self._originals) != manifest["count"]:
            raise IndexCorruptError(
                f"{directory}: counts disagree (manifest {manifest['count']}, engine "
                f"{len(self._engine)}, originals {len(self._originals)})"
            )
        self.applied_lsn = int(manifest["applied_lsn"])
        self._generation = int(manifest["generation"])
        self._remove_strays(manifest)
        logger.info(
            "opened space %r: %d vectors, applied_lsn=%d", spec.name, len(self), self.applied_lsn
        )

    def _open_without_manifest(self) -> None:
        directory = self.directory
        if not directory.exists():
            return
        entries = list(directory.iterdir())
        if any(p.name.startswith("ckpt-") for p in entries):
            raise IndexCorruptError(f"{directory / MANIFEST}: missing (checkpoint files exist)")
        # Only originals appended before the first checkpoint (or temp files): nothing durable
        # was promised, the op log replays from LSN 0. Files a live process appends to stay.
        for p in entries:
            if p.name.endswith(".tmp") or (p.name.startswith("originals-") and try_lock_file(p)):
                p.unlink(missing_ok=True)

    def _read_manifest(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_bytes())
            body, digest = data["body"], data["sha256"]
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"{path}: unreadable manifest: {exc}") from exc
        if _manifest_digest(body) != digest:
            raise IndexCorruptError(f"{path}: manifest checksum mismatch")
        expected = {
            "format": FORMAT_VERSION,
            "backend": self.config.backend,
            "quantization": self.config.quantization,
            "dim": self.spec.dim,
            "metric": self.spec.metric,
        }
        for field, want in expected.items():
            if body.get(field) != want:
                raise IndexCorruptError(
                    f"{path}: {field} is {body.get(field)!r} on disk but {want!r} is configured"
                )
        return dict(body)

    def _verify_files(self, manifest: dict[str, Any]) -> None:
        for entry in manifest["files"]:
            path = self.directory / entry["path"]
            if not path.is_file():
                raise IndexCorruptError(f"{path}: missing")
            size = path.stat().st_size
            if size != entry["size"]:
                raise IndexCorruptError(f"{path}: size {size}, manifest says {entry['size']}")
            if hash_file_range(path, 0, size) != entry["sha256"]:
                raise IndexCorruptError(f"{path}: sha256 mismatch")
        orig = manifest["originals"]
        path = self.directory / orig["file"]
        need = int(orig["rows"]) * 4 * self.spec.dim
        if need == 0:
            return
        if not path.is_file():
            raise IndexCorruptError(f"{path}: missing")
        if path.stat().st_size < need:
            raise IndexCorruptError(f"{path}: truncated ({path.stat().st_size} < {need} bytes)")
        for seg in orig["segments"]:
            if hash_file_range(path, seg["offset"], seg["length"]) != seg["sha256"]:
                raise IndexCorruptError(
                    f"{path}: sha256 mismatch in bytes {seg['offset']}..+{seg['length']}"
                )

    def _remove_strays(self, manifest: dict[str, Any]) -> None:
        """Delete files no manifest names: older generations, interrupted checkpoints, and
        originals files whose process is gone (a live one holds an flock on its file).

        Runs under the exclusive directory lock, so nobody is loading what it removes; a
        process that loaded a generation earlier keeps its engine in memory and its originals
        mapped, which an unlink does not disturb.
        """
        keep = {manifest["checkpoint"], manifest["originals"]["file"], MANIFEST, LOCK_FILE}
        for p in self.directory.iterdir():
            if p.name in keep:
                continue
            if p.name.startswith("ckpt-") and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
            elif p.name.startswith("originals-") and try_lock_file(p):
                p.unlink(missing_ok=True)

    def _new_engine(self) -> AnnEngine:
        return create_engine(self.spec.dim, self.spec.metric, self.config)

    def _new_originals(self) -> Originals:
        cfg = self.config
        rescoring = cfg.quantization != "f32" and cfg.oversample > 1
        return Originals(
            self.directory,
            self.spec.dim,
            creating=lambda: self._dir_lock.hold(exclusive=True),
            rescore=cfg.rescore if rescoring else "originals",
        )

    def _wire_engine(self) -> None:
        # engines that rebuild (faiss compaction/retraining) re-read exact vectors from here
        if hasattr(self._engine, "vector_source"):
            self._engine.vector_source = self._originals.get

    def checkpoint(self, lsn: int | None = None, force: bool = False) -> bool:
        """Persist engine, originals and manifest (``applied_lsn = lsn``) crash-safely.

        ``lsn`` defaults to the LSN this index has applied; the caller vouches that the index
        holds every op up to it. Another process may have published a checkpoint at a newer
        LSN meanwhile: that one is kept (returns False) unless ``force`` (a rebuild replacing
        a corrupt or foreign index). Returns True when this state was published.
        """
        lsn = self.applied_lsn if lsn is None else int(lsn)
        with self._lock.write(), self._dir_lock.hold(exclusive=True):
            on_disk = self._disk_manifest()
            if not force and on_disk is not None and on_disk["applied_lsn"] >= lsn:
                self.applied_lsn = max(self.applied_lsn, lsn)
                return False
            disk_gen = int(on_disk["generation"]) if on_disk else 0
            self._checkpoint(lsn, max(self._generation, disk_gen) + 1)
            return True

    def published_lsn(self) -> int | None:
        """The LSN of the checkpoint on disk (any process's), or None when there is none."""
        with self._dir_lock.hold(exclusive=True):
            on_disk = self._disk_manifest()
        return None if on_disk is None else int(on_disk["applied_lsn"])

    def _disk_manifest(self) -> dict[str, Any] | None:
        path = self.directory / MANIFEST
        if not path.exists():
            return None
        try:
            return self._read_manifest(path)
        except IndexCorruptError:
            return None  # unreadable or foreign: anything valid replaces it

    def _checkpoint(self, lsn: int, gen: int) -> None:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        if self._erased and self.rebuild_on_erase:  # else tombstoned codes stay in its files
            self._engine.compact()
        if self._erased or self._originals.dead_fraction > ORIGINALS_COMPACT_FRACTION:
            self._originals.compact()
            self._erased = False
        orig_entry = self._originals.sync()
        ckpt = d / f"ckpt-{gen:06d}"
        if ckpt.exists():  # left by a crashed attempt; never referenced by a manifest
            shutil.rmtree(ckpt)
        ckpt.mkdir()
        files = [*self._engine.save(ckpt), self._originals.save_rows(ckpt / "originals.rows.npy")]
        entries = []
        for path in files:
            _fsync_file(path)
            size = path.stat().st_size
            rel = path.relative_to(d).as_posix()
            entries.append({"path": rel, "size": size, "sha256": hash_file_range(path, 0, size)})
        _fsync_dir(ckpt)
        body = {
            "format": FORMAT_VERSION,
            "space": self.spec.name,
            "encoder": self.spec.encoder,
            "encoder_version": self.spec.version,
            "backend": self.config.backend,
            "quantization": self.config.quantization,
            "dim": self.spec.dim,
            "metric": self.spec.metric,
            "applied_lsn": int(lsn),
            "count": len(self._originals),
            "generation": gen,
            "checkpoint": ckpt.name,
            "files": entries,
            "originals": orig_entry,
        }
        tmp = d / (MANIFEST + ".tmp")
        with open(tmp, "w") as fh:
            json.dump({"body": body, "sha256": _manifest_digest(body)}, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, d / MANIFEST)
        _fsync_dir(d)
        # the new manifest is durable: older generations are garbage now
        self._generation = gen
        self.applied_lsn = int(lsn)
        self._remove_strays(body)

    def reset(self) -> None:
        """Drop every vector and file (the manifest first), back to an empty index at LSN 0."""
        with self._lock.write(), self._dir_lock.hold(exclusive=True):
            (self.directory / MANIFEST).unlink(missing_ok=True)
            self._engine.close()
            self._originals.close()
            if self.directory.exists():
                _fsync_dir(self.directory)
                for p in self.directory.iterdir():
                    if p.name.startswith("ckpt-") and p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    elif p.name.startswith("originals-") or p.name.endswith(".tmp"):
                        p.unlink(missing_ok=True)
            self._engine = self._new_engine()
            self._originals = self._new_originals()
            self._wire_engine()
            self._generation = 0
            self.applied_lsn = 0

    def close(self) -> None:
        with self._lock.write():
            self._engine.close()
            self._originals.close()

    # ================================================================== mutation

    def _prepare(self, vectors: npt.ArrayLike, n: int) -> Vectors:
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape != (n, self.spec.dim):
            raise ValueError(f"vectors must have shape ({n}, {self.spec.dim}), got {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError("vectors contain NaN or infinite values")
        if self.spec.metric == "cos":  # callers normalise; doing it again is cheap insurance
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            v = v / np.where(norms > 0, norms, 1.0)
        return v

    def upsert(self, keys: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Insert or replace vectors by key (the last occurrence wins within one batch)."""
        keys = np.asarray(keys, dtype=np.int64).ravel()
        if len(keys) == 0:
            return
        v = self._prepare(vectors, len(keys))
        # last occurrence of each key wins
        _, last = np.unique(keys[::-1], return_index=True)
        if len(last) != len(keys):
            idx = np.sort(len(keys) - 1 - last)
            keys, v = keys[idx], v[idx]
        with self._lock.write():
            existing = keys[self._originals.lookup(keys) >= 0]
            if len(existing):
                self._engine.remove(existing)
                self._originals.remove(existing)
            self._originals.append(keys, v)
            self._engine.add(keys, v)

    def remove(self, keys: npt.ArrayLike) -> None:
        """Remove keys; unknown keys are ignored."""
        keys = np.asarray(keys, dtype=np.int64).ravel()
        with self._lock.write():
            live = keys[self._originals.lookup(keys) >= 0]
            if len(live):
                self._engine.remove(live)
                self._originals.remove(live)
                self._erased = True

    # ================================================================== reads

    def __len__(self) -> int:
        return len(self._originals)

    def keys(self) -> Keys:
        with self._lock.read():
            return self._originals.keys()

    def engine_count(self) -> int:
        """Vectors the ANN engine holds (``edgerag check`` compares it with the originals)."""
        with self._lock.read():
            return len(self._engine)

    def canonical(self, vectors: npt.ArrayLike) -> Vectors:
        """``vectors`` exactly as :meth:`upsert` would keep them (f32, normalised for cos)."""
        v = np.asarray(vectors)
        return self._prepare(v, len(v))

    def get_vectors(self, keys: npt.ArrayLike) -> Vectors:
        """Original f32 vectors of ``keys``; raises NotFoundError for absent keys."""
        with self._lock.read():
            return self._originals.get(keys)

    @property
    def oversample(self) -> float:
        over = self.config.oversample
        if over <= 1:  # explicitly disabled: engine scores as they are
            return 1.0
        return max(over, MIN_OVERSAMPLE.get(self.config.quantization, 1.0))

    def candidates(self, k: int) -> int:
        """How many candidates an unfiltered search fetches from the engine for a top-k."""
        over = self.oversample if self._rescoring else 1.0
        return max(k, math.ceil(k * over))

    def _queries(self, queries: npt.ArrayLike) -> Vectors:
        q = as_queries(queries, self.spec.dim)
        if self.spec.metric != "cos":
            return q
        if len(q) == 1:  # the single-query hot path: one dot instead of linalg.norm's checks
            norm = math.sqrt(float(q[0] @ q[0]))
            return q * np.float32(1.0 / norm) if norm > 0 else q.copy()
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        return (q / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)

    def exact_search(
        self, queries: npt.ArrayLike, k: int, allowed: npt.ArrayLike | None = None
    ) -> SearchResult:
        """Brute force over the f32 originals: the oracle path (recall 1.0)."""
        q = self._queries(queries)
        allowed_keys = None if allowed is None else sorted_unique_keys(allowed)
        with self._lock.read():
            return self._originals.scan(q, k, self.spec.metric, allowed_keys)

    def search(
        self, queries: npt.ArrayLike, k: int, allowed: npt.ArrayLike | None = None
    ) -> tuple[SearchResult, str]:
        """Top-k per query, optionally restricted to ``allowed`` keys; returns (result, plan).

        Plan: a selective filter (≤ ``max(exact_threshold, exact_fraction * len)`` keys) is
        scanned exactly; otherwise the engine searches (natively filtered when it can, else
        oversampled and post-filtered, widening and finally falling back to exact), and
        quantized engines fetch ``k * oversample`` candidates re-ranked on the f32 originals.
        """
        q = self._queries(queries)
        with self._lock.read():
            n = len(self._originals)
            if n == 0 or k <= 0:
                return empty_result(len(q), k), "empty"
            if allowed is None:
                return self._ann(q, k, None)
            allowed_keys = sorted_unique_keys(allowed)
            cfg = self.config
            if len(allowed_keys) <= max(cfg.exact_threshold, cfg.exact_fraction * n):
                return self._exact_filtered(q, k, allowed_keys)
            return self._ann(q, k, allowed_keys)

    def _exact_filtered(self, q: Vectors, k: int, allowed: Keys) -> tuple[SearchResult, str]:
        """Scan every allowed row: over the engine's compact codes, then rescore the top of it
        on the f32 originals; small sets (or engines without flat codes) scan the originals.

        At 1M × 512 a 1 % filter gathers 10k rows: 5 MB of int8 codes instead of 20 MB of f32
        (the f32 gather alone took longer than an unfiltered search). Every allowed row is
        scored, so no graph-reachability loss; what remains is the codes' ranking error, which
        rescoring ``EXACT_CODES_OVERSAMPLE × k`` candidates absorbs (recall 1.0 in index_bench
        at 100k and 1M; the contract tests compare with brute force).
        """
        cand = max(self.candidates(k), math.ceil(EXACT_CODES_OVERSAMPLE * k))
        scan_codes = getattr(self._engine, "scan_codes", None)
        if scan_codes is not None and len(allowed) > EXACT_CODES_MIN_FACTOR * cand:
            res = scan_codes(q, cand, allowed)
            if res is not None:
                if self.config.quantization == "f32":  # the codes are the originals
                    return SearchResult(res.keys[:, :k], res.scores[:, :k]), (
                        f"exact(allowed={len(allowed)})"
                    )
                res = self._originals.rescore(q, res, k, self.spec.metric)
                return res, f"exact-codes(allowed={len(allowed)})+rescore(x{cand / k:g})"
        plan = f"exact(allowed={len(allowed)})"
        return self._originals.scan(q, k, self.spec.metric, allowed), plan

    def _ann(self, q: Vectors, k: int, allowed: Keys | None) -> tuple[SearchResult, str]:
        over = self.oversample if self._rescoring else 1.0
        kk = self.candidates(k)
        n = len(self._originals)
        if allowed is None:
            res = self._engine.search(q, kk)
            plan = "ann"
        elif self._engine.supports_filter:
            res, plan = self._native_filter(q, k, kk, allowed, n)
        else:
            res, plan = self._postfilter(q, k, kk, allowed, n)
        if plan.startswith("exact"):
            return res, plan
        if self._rescoring:
            res = self._originals.rescore(q, res, k, self.spec.metric)
            plan += f"+rescore(x{over:g})"
        elif res.keys.shape[1] != k:
            res = SearchResult(res.keys[:, :k], res.scores[:, :k])
        return res, plan

    def _filter_ef(self, kk: int, selectivity: float) -> int:
        # HNSW walks through filtered-out nodes; widening the beam by 1/sqrt(selectivity)
        # keeps recall up under a 10% filter at a modest cost (measured in index_bench).
        return int(max(self.config.ef_search, kk) / math.sqrt(max(selectivity, 1e-4)))

    def _native_filter(
        self, q: Vectors, k: int, kk: int, allowed: Keys, n: int
    ) -> tuple[SearchResult, str]:
        want = min(k, len(allowed))
        ef = self._filter_ef(kk, len(allowed) / n)
        for _ in range(MAX_FILTER_ROUNDS):
            res = self._engine.search(q, kk, allowed, ef=ef)
            found = int((res.keys[:, :kk] >= 0).sum(axis=1).min())
            if found >= want:
                return res, "ann+filter"
            ef *= 4
        # allowed contained dead keys, or the graph could not reach enough of them
        return self._originals.scan(q, k, self.spec.metric, allowed), "exact(fallback)"

    def _postfilter(
        self, q: Vectors, k: int, kk: int, allowed: Keys, n: int
    ) -> tuple[SearchResult, str]:
        want = min(k, len(allowed))
        factor = max(2, math.ceil(1.5 * n / len(allowed)))
        for _ in range(MAX_FILTER_ROUNDS):
            count = min(n, kk * factor)
            raw = self._engine.search(q, count, ef=max(self.config.ef_search, count))
            res, found = keep_allowed(raw, allowed, kk)
            if found >= want:
                return res, f"ann+oversample(x{factor})"
            if count >= n:
                break
            factor *= 4
        return self._originals.scan(q, k, self.spec.metric, allowed), "exact(fallback)"

    # ================================================================== introspection

    def stats(self) -> dict[str, Any]:
        """Counts and settings, for status pages and benchmarks."""
        return {
            "space": self.spec.name,
            "backend": self.config.backend,
            "quantization": self.config.quantization,
            "count": len(self),
            "applied_lsn": self.applied_lsn,
            "generation": self._generation,
            "originals_file": self._originals.file_name,
            "originals_rows": self._originals.rows,
            "tombstones": getattr(self._engine, "tombstones", 0),
        }
