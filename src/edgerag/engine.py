"""The Engine façade: one collection directory = store.db + index/ + config.json.

Everything else (CLI, HTTP, fleet) goes through this class.

Many processes may open one collection at once (a server, CLI ingests, a cron job). Writers
serialize through SQLite (``BEGIN IMMEDIATE``; the op log's AUTOINCREMENT gives the LSN).
Every process keeps its own in-memory indexes and makes them *follow the op log* from their
own applied LSN: :meth:`Engine.follow` runs before each search and after each write, one
``MAX(lsn)`` query when nothing changed; otherwise it syncs the keys the missed ops touched
from the store. Nothing sets an applied LSN it has not replayed; checkpoints never replace a
newer one (see ``index/space.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edgerag import crypto
from edgerag.config import MODES, EngineConfig
from edgerag.encoders.base import TextEncoder
from edgerag.errors import ConfigError, IndexCorruptError, NotFoundError
from edgerag.generation.unit_vectors import encode_items
from edgerag.index import sealed
from edgerag.index.space import SpaceIndex
from edgerag.ingest.chunking import RegexSpans, TokenSpans, WordpieceSpans
from edgerag.ingest.documents import (
    TEXT_SPACE,
    InputLike,
    RawInput,
    build_media_op,
    build_op,
    expand_inputs,
)
from edgerag.ingest.pipeline import (
    ADDED,
    IMAGE_BATCH,
    LOOKAHEAD,
    UNCHANGED,
    Preparer,
    pipelined,
)
from edgerag.ingest.structure import context_text
from edgerag.lexical import open_lexical
from edgerag.privacy.scrub import scrubber_for
from edgerag.retrieval.cache import ResultCache
from edgerag.retrieval.filters import Filters
from edgerag.retrieval.pipeline import Retriever
from edgerag.retrieval.query import FUSIONS
from edgerag.store.ops import DELETE, Op, SpaceVectors
from edgerag.store.sqlite import Store
from edgerag.types import IngestReport, Query, SearchResponse, SpaceSpec

logger = logging.getLogger(__name__)

Progress = Callable[[str, str], None]  # (source, outcome: "added" | "unchanged" | "error")


def _minilm(encoder: str) -> bool:
    """MiniLM-L6 vectors, whichever compute ("minilm", "minilm-q8")."""
    return encoder in ("minilm", "minilm-q8")


def create_encoder(name: str) -> TextEncoder:
    if name == "hash":
        from edgerag.encoders.fake import HashEncoder

        return HashEncoder()
    if _minilm(name):
        from edgerag.encoders.minilm import MiniLMEncoder

        return MiniLMEncoder(compute="int8" if name == "minilm-q8" else "f32")
    raise ConfigError(f"unknown encoder {name!r}")


SCRUB_KEY = "_scrub_pii"  # an ingest call's metadata flag: redact PII before anything else


def _unflagged(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k != SCRUB_KEY}


class Engine:
    """A collection: ingest, search, delete, stats. Thread-safe: one writer, many readers."""

    def __init__(
        self,
        path: Path | None,
        config: EngineConfig,
        encoder: TextEncoder | None = None,
        key: bytes | None = None,
    ) -> None:
        self.path = path
        self.config = config
        self.encoder = encoder or create_encoder(config.encoder)
        self._write_lock = threading.RLock()
        self._ops_since_checkpoint = 0
        self._scratch: Path | None = None
        # Called with every op after it is applied (the fleet publishes from here).
        self.listeners: list[Callable[[Op], None]] = []
        self.ingest_lookahead = LOOKAHEAD  # inputs prepared ahead of the writer (0: none)
        self.ingest_image_batch = IMAGE_BATCH  # consecutive images per visual forward pass
        if path is not None and config.encrypt:
            key = crypto.require_key(path, key)
        store_file = path / "store.db" if path else None
        self.store = Store(store_file, synchronous=config.synchronous, key=key)
        # An encrypted collection writes no plain index files: its indexes live in RAM (a
        # private tmpfs directory) and are persisted as sealed checkpoints (index/sealed.py).
        self._persist_index = path is not None and not self.store.encrypted
        minilm = _minilm(config.encoder)
        self._spans: TokenSpans = WordpieceSpans() if minilm else RegexSpans()
        self._media: Any = None
        self._clip: Any = None
        self.indexes: dict[str, SpaceIndex] = {}
        self._open_space(
            SpaceSpec(TEXT_SPACE, self.encoder.id, self.encoder.version, self.encoder.dim)
        )
        for name, spec in self.store.spaces().items():  # visual / joint spaces made by ingests
            if name != TEXT_SPACE:
                self._open_space(spec)
        self._head: Any = None
        self.lexical = open_lexical(config.lexical, self.store)  # BM25, follows the log too
        self.retriever = Retriever(self)
        self.cache = ResultCache(self)  # LSN-scoped: any write or delete invalidates it
        if "imagetext" in self.indexes and self.joint_head is not None:
            from edgerag.ingest.joint import reembed_images

            reembed_images(self, self.joint_head)  # a new head version: image items only

    # lifecycle ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        config: EngineConfig | None = None,
        encoder: TextEncoder | None = None,
        key: bytes | None = None,
    ) -> Engine:
        """Open (or create) the collection at ``path``; ``None`` or ":memory:" = in memory.

        The config is stored with the collection; reopening without one reuses it. ``key``
        opens an encrypted collection (default: ``EDGERAG_KEY`` / ``EDGERAG_KEY_FILE``).

        Raises:
            EncryptionKeyError: the collection is encrypted and the key is missing or wrong.
        """
        if path is None or str(path) == ":memory:":
            return cls(None, config or EngineConfig(), encoder)
        directory = Path(path)
        config_file = directory / "config.json"
        if config is None:
            config = EngineConfig.load(config_file) if config_file.exists() else EngineConfig()
        if not config.encrypt and crypto.collection_encrypted(directory):
            config = dataclasses.replace(config, encrypt=True)  # a caller's config can't undo it
        if config.encrypt:
            key = crypto.require_key(directory, key)  # before anything is written
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(config_file, config.to_json())
        return cls(directory, config, encoder, key)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._write_lock:
            for index in self.indexes.values():
                if self.path is not None:
                    index.checkpoint()  # at the LSN it applied; kept if another is newer
                    self._seal(index)
                index.close()
            self.lexical.close()
            self.store.close()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)

    # index recovery ----------------------------------------------------------------------
    def _index_dir(self, space: str) -> Path:
        if self._persist_index:
            assert self.path is not None
            return self.path / "index" / space
        # In-memory and encrypted collections keep their index files in a private temp dir,
        # removed on close; an encrypted one's in RAM (tmpfs), never on the disk in plain.
        # Named with the pid: those of processes killed by a signal are swept by the next one.
        if self._scratch is None:
            self._scratch = (
                crypto.ram_scratch_dir("edgerag-index-")
                if self.store.encrypted
                else crypto.scratch_dir("edgerag-mem-")
            )
            # removed by close(), or when an engine never closed is collected (else every
            # such engine left its directory behind in /tmp)
            weakref.finalize(self, shutil.rmtree, self._scratch, ignore_errors=True)
        return self._scratch / space

    def _open_space(self, spec: SpaceSpec) -> None:
        stored = self.store.spaces().get(spec.name)
        if stored and stored.dim != spec.dim:
            raise ConfigError(
                f"space {spec.name!r} holds {stored.dim}-d vectors from {stored.encoder}; "
                f"encoder {spec.encoder} makes {spec.dim}-d vectors: use a new collection"
            )
        if stored != spec:  # a follower opening a space another process made writes nothing
            self.store.put_space(spec)
        directory = self._index_dir(spec.name)
        if self.store.encrypted:
            index = self._open_sealed(directory, spec)
        else:
            index = self._open_checkpoint(directory, spec)
        index.rebuild_on_erase = self.config.erase_rebuilds_index
        self.indexes[spec.name] = index
        self._catch_up(spec.name)
        changed = stored and (stored.encoder, stored.version) != (spec.encoder, spec.version)
        if changed and spec.name == TEXT_SPACE:
            self._reembed(spec)

    def _open_sealed(self, directory: Path, spec: SpaceSpec) -> SpaceIndex:
        """An encrypted collection's index: its sealed checkpoint unpacked into RAM, else
        rebuilt from the store (and sealed, so the next process starts from it)."""
        assert self.path is not None and self.store.key is not None
        if sealed.restore(self.path / "index", spec.name, directory, self.store.key):
            return self._open_checkpoint(directory, spec)
        index = self._rebuild(directory, spec)
        index.checkpoint(force=True)
        self._seal(index)
        return index

    def _seal(self, index: SpaceIndex) -> None:
        key = self.store.key
        if self.path is not None and self.store.encrypted and key is not None:
            sealed.publish(index.directory, self.path / "index", index.spec.name, key)

    def _open_checkpoint(self, directory: Path, spec: SpaceSpec) -> SpaceIndex:
        try:
            index = SpaceIndex.open(directory, spec, self.config.index)
            if index.applied_lsn > self.store.last_lsn():
                raise IndexCorruptError(f"{directory}: index is ahead of the op log")
        except IndexCorruptError as exc:
            logger.warning("index %s unusable (%s); rebuilding from the store", spec.name, exc)
            index = self._rebuild(directory, spec)
        return index

    def _rebuild(self, directory: Path, spec: SpaceSpec) -> SpaceIndex:
        """A fresh index from the store's vectors, published over whatever ``directory`` holds.

        Other processes may be using the directory: nothing is removed under them (the new
        checkpoint supersedes the old files, which the stray sweep removes when unused).
        """
        index = SpaceIndex.empty(directory, spec, self.config.index)
        # Read the LSN first: ops committed while the vectors are read are re-synced by
        # follow() (idempotent), so the index never claims an op it may have missed.
        last = self.store.last_lsn()
        for keys, vectors in self.store.iter_vectors(spec.name):
            index.upsert(keys, vectors)
        index.applied_lsn = last
        if self._persist_index:
            index.checkpoint(force=True)
        return index

    def rebuild_index(self, space: str) -> None:
        """Throw away this process's index of ``space`` and rebuild it from the store."""
        with self._write_lock:
            old = self.indexes[space]
            self.indexes[space] = self._rebuild(old.directory, old.spec)
            old.close()
            self._catch_up(space)

    def _catch_up(self, space: str, last: int | None = None) -> None:
        """Replay what the op log holds beyond the index's applied LSN, up to ``last`` (crash
        recovery, and ops written by other processes)."""
        index = self.indexes[space]
        last = self.store.last_lsn() if last is None else last
        if index.applied_lsn >= last:
            return
        touched = self.store.keys_touched_since(index.applied_lsn, upto=last)
        self._sync_keys(space, touched)
        logger.debug("index %s follows the op log: LSN %d -> %d", space, index.applied_lsn, last)
        index.applied_lsn = last

    def follow(self) -> int:
        """Bring every index of this process up to the op log, whichever process wrote it.

        One ``MAX(lsn)`` query when nothing changed. Returns the LSN every index has applied.
        """
        last = self.store.last_lsn()
        # tuple(): another thread may add a space meanwhile (under the write lock)
        if min((ix.applied_lsn for ix in tuple(self.indexes.values())), default=last) >= last:
            return last
        with self._write_lock:
            return self._follow_locked()

    def _follow_locked(self) -> int:
        last = self.store.last_lsn()
        for name, spec in self.store.spaces().items():  # e.g. `visual`, made by another process
            if name not in self.indexes:
                self._open_space(spec)
        for name in self.indexes:
            self._catch_up(name, last)
        return min(ix.applied_lsn for ix in self.indexes.values())

    def _sync_keys(self, space: str, keys: np.ndarray) -> None:
        """Make the index agree with the store for ``keys`` (idempotent)."""
        index = self.indexes[space]
        present, vectors = self.store.vectors(space, keys)
        gone = np.setdiff1d(keys, present)
        if len(gone):
            index.remove(gone)
        if len(present):
            index.upsert(present, vectors)

    def _reembed(self, spec: SpaceSpec) -> None:
        """The encoder changed: re-embed only the items whose vectors came from another one."""
        stale = self.store.stale_keys(spec.name, spec.encoder, spec.version)
        logger.info(
            "re-embedding %d items of space %s with %s", len(stale), spec.name, spec.encoder
        )
        stale_docs = {row["doc_id"] for row in self.store.items([int(k) for k in stale]).values()}
        for doc_id in sorted(stale_docs):
            op = self.store.materialize(doc_id)
            embedded = [context_text(it.text, it.metadata) for it in op.items]
            keys = np.array([it.key for it in op.items], dtype=np.int64)
            # the unit vectors came from the old encoder too: recomputed in the same pass
            vectors, op.units = encode_items(
                self.encoder, op.items, embedded, self.config.unit_vectors
            )
            op.vectors[spec.name] = SpaceVectors(spec.encoder, spec.version, keys, vectors)
            self.apply(op)

    # media models, loaded on first use -------------------------------------------------
    @property
    def media(self) -> Any:
        """The image/audio/video pipeline (needs the ``media`` extra)."""
        if self._media is None:
            from edgerag.ingest.media import MediaPipeline

            cfg = self.config
            self._media = MediaPipeline(
                cfg.limits,
                ocr=cfg.ocr,
                transcribe=cfg.transcribe,
                video_ocr=cfg.ocr,  # "ocr" covers video frames too (see EngineConfig)
                audio_window_s=cfg.audio_window_s,
                audio_overlap_s=cfg.audio_overlap_s,
                video_fps=cfg.video_fps,
            )
        return self._media

    @property
    def joint_head(self) -> Any:
        """The trained image→text head (``imagetext`` space), unless CLIP weights are set."""
        cfg = self.config
        # The head maps into MiniLM's space: with another text encoder there is nothing to meet.
        # minilm-q8's vectors are MiniLM's within cosine 0.995; the held-out head evaluation
        # (benchmarks/joint_bench.py --text-compute int8) measured the same recall with them.
        if not cfg.joint_head or cfg.clip_model is not None or not _minilm(cfg.encoder):
            return None
        if self._head is None:
            from edgerag.encoders.joint import shared_head

            self._head = shared_head()
        return self._head

    @property
    def clip(self) -> Any:
        """The CLIP/SigLIP encoder of the ``joint`` space, when weights are configured."""
        if self.config.clip_model is None:
            return None
        if self._clip is None:
            from edgerag.encoders.clip import ClipEncoder

            self._clip = ClipEncoder(Path(self.config.clip_model))
        return self._clip

    # writes ------------------------------------------------------------------------------
    def apply(self, op: Op) -> int:
        """Apply an op through the one write path (local writes and replication alike)."""
        return self.apply_many([op])[0]

    def apply_many(self, ops: list[Op]) -> list[int]:
        """Apply ops in order, in one store transaction; the indexes follow before returning."""
        if not ops:
            return []
        with self._write_lock:
            for op in ops:
                for space, sv in op.vectors.items():
                    if space not in self.indexes:
                        dim = int(sv.vectors.shape[1])
                        self._open_space(SpaceSpec(space, sv.encoder, sv.version, dim))
            lsns = self.store.apply_many(ops)
            # Other processes may have written between this index's applied LSN and ours:
            # follow the whole log, not only this batch.
            self._follow_locked()
            self._ops_since_checkpoint += len(ops)
            # A delete is checkpointed at once: the checkpoint drops the deleted vectors'
            # rows from the files on disk (see SpaceIndex._erased).
            erased = any(op.kind == DELETE for op in ops)
            if erased or self._ops_since_checkpoint >= self.config.checkpoint_ops:
                self.checkpoint()
            for op in ops:
                for listener in self.listeners:
                    listener(op)
        return lsns

    def checkpoint(self) -> None:
        """Follow the op log, then persist every index at the LSN it applied."""
        with self._write_lock:
            self._follow_locked()
            for index in self.indexes.values():
                index.checkpoint()
                self._seal(index)
            self._ops_since_checkpoint = 0

    def ingest(
        self,
        inputs: InputLike | Iterable[InputLike],
        metadata: dict[str, Any] | None = None,
        progress: Progress | None = None,
        scrub_pii: bool | None = None,
    ) -> IngestReport:
        """Ingest files, directories or ``(name, bytes)`` pairs.

        Every input is its own transaction: a bad one is reported in ``errors`` and the others
        still land. Unchanged content is a no-op; changed content replaces the old items.
        ``scrub_pii`` (default: the collection's ``scrub_pii``) redacts PII before anything is
        embedded, indexed or stored; the document keeps counts by kind (``redactions``).
        """
        report = IngestReport()
        metadata = dict(metadata or {})
        if scrub_pii if scrub_pii is not None else self.config.scrub_pii:
            # Part of the content hash (switching scrubbing on re-ingests); popped before build.
            metadata[SCRUB_KEY] = True
        prepared = self._preparer(metadata).run(expand_inputs(inputs, self.config.limits))
        # Inputs are prepared (extract, chunk, encode) ahead in a worker while this thread
        # writes them one transaction each, in input order (see ingest/pipeline.py).
        for prep in pipelined(prepared, self.ingest_lookahead):
            if prep.outcome == ADDED and prep.op is not None:
                self.apply(prep.op)
                report.added.append(prep.doc_id)
                report.items += len(prep.op.items)
            elif prep.outcome == UNCHANGED:
                report.unchanged.append(prep.doc_id)
            else:
                report.errors.append((prep.source, prep.reason))
            if progress:
                progress(prep.source, prep.outcome)
        if self.config.caption_transfer and report.added and "visual" in self.indexes:
            from edgerag.ingest.joint import transfer_captions

            transfer_captions(self, report.added)
        report.lsn = self.store.last_lsn()
        return report

    def _preparer(self, metadata: dict[str, Any]) -> Preparer:
        def stored_hash(doc_id: str) -> str | None:
            # Under the write lock: an in-memory (shared-cache) store would refuse a read
            # that overlaps this process's write transaction instead of waiting for it.
            with self._write_lock:
                existing = self.store.document(doc_id)
            return existing["content_hash"] if existing else None

        scrub = scrubber_for(self.config.pii_regions) if metadata.get(SCRUB_KEY) else None

        def build_text(raw: RawInput, meta: Any, chash: str) -> Op:
            cfg = self.config
            return build_op(
                raw, _unflagged(meta), self.encoder, self._spans, cfg.chunk_tokens,
                cfg.chunk_overlap, cfg.limits, chash, self.clip, scrub, cfg.unit_vectors,
            )  # fmt: skip

        def build_media(raw: RawInput, meta: Any, chash: str, extracted: Any) -> Op:
            return build_media_op(
                raw, _unflagged(meta), self.encoder, self.media, self.clip, chash, extracted,
                scrub, self.joint_head, self.config.unit_vectors,
            )  # fmt: skip

        return Preparer(
            metadata,
            stored_hash,
            build_text,
            build_media,
            extract_images=lambda inputs: self.media.extract_images(inputs),
            image_batch=self.ingest_image_batch,
        )

    def delete(self, doc_id: str) -> int:
        """Delete a document (by id, the path it was ingested from, or its unambiguous source
        name as ``edgerag documents`` lists it); return the LSN."""
        from edgerag.store.lookup import resolve_document

        return self.apply(Op(kind=DELETE, doc_id=resolve_document(self.store, doc_id)))

    def erasure_report(self, doc_id: str) -> list[dict[str, Any]]:
        """This store's erasure records of ``doc_id`` (as given, or as the absolute path a CLI
        ingest would have used as its id); empty when it was never deleted here."""
        found = self.store.erasures(doc_id)
        resolved = str(Path(doc_id).resolve())
        if not found and resolved != doc_id:
            found = self.store.erasures(resolved)
        return found

    # reads -------------------------------------------------------------------------------
    def search(
        self,
        query: str | Query,
        k: int = 10,
        filters: Filters | None = None,
        mode: str = "hybrid",
        fusion: str = "early",
        boosts: dict[str, float] | None = None,
        ocr: bool = True,
    ) -> SearchResponse:
        """Rank items for ``query`` (a string, or a :class:`Query` with text, image, audio).

        Args:
            mode: "hybrid" (dense + BM25 fused by RRF), "dense" or "bm25".
            fusion: "early" — the query's modalities become one vector per space and one search
                (the default); "late" — one search per modality, merged with RRF.
            boosts: per-modality score multipliers, e.g. ``{"image": 1.5}``.
            ocr: read text in a query photo (slow: ~0.5 s); labels and visual features always run.
        """
        if mode not in MODES:
            raise ConfigError(f"unknown search mode {mode!r}; choose one of {list(MODES)}")
        if fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {fusion!r}; choose one of {list(FUSIONS)}")
        if k < 1 or k > 1000:
            raise ConfigError("k must be between 1 and 1000")
        q = Query.of(query)
        if q.text is not None and not q.text.strip() and q.image is None and q.audio is None:
            raise ConfigError("empty query")
        self.follow()  # see writes other processes committed
        return self.cache.search(
            q,
            k,
            filters,
            mode,
            lambda: self.retriever.search(
                q, k=k, filters=filters, mode=mode, fusion=fusion, boosts=boosts, ocr=ocr
            ),
            fusion=fusion,
            boosts=boosts,
            ocr=ocr,
        )  # noqa: E501

    def document(self, doc_id: str) -> dict[str, Any]:
        doc = self.store.document(doc_id)
        if doc is None:
            raise NotFoundError(f"document {doc_id!r} not found")
        return doc

    def entity(self, name: str) -> dict[str, Any]:
        """Where an entity (``E-107``, ``e107``, ``KX40-CPL-140E``) appears, and its neighbours."""
        return self.store.entity(name)

    def documents(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return self.store.documents(limit, offset)

    def stats(self) -> dict[str, Any]:
        """What the collection holds; per space, lag and vector counts from the real state.

        ``lag`` is the store's last LSN minus the index's applied LSN and ``store_vectors``
        the store's vector count, both read in one store snapshot after following the log;
        ``in_sync`` is False when either disagrees with the index (``/readyz`` then fails).
        """
        last, store_vectors = self._consistent_snapshot()
        return {
            "path": str(self.path) if self.path else ":memory:",
            "documents": self.store.count_documents(),
            "items": self.store.count_items(),
            "lsn": last,
            "encoder": {"id": self.encoder.id, "version": self.encoder.version},
            "config": {
                "backend": self.config.index.backend,
                "quantization": self.config.index.quantization,
                "chunk_tokens": self.config.chunk_tokens,
                "chunk_overlap": self.config.chunk_overlap,
            },
            "lexical": self.lexical.stats(),
            "spaces": {
                name: {
                    "vectors": len(index),
                    "store_vectors": store_vectors.get(name, 0),
                    "applied_lsn": index.applied_lsn,
                    "lag": last - index.applied_lsn,
                    "in_sync": last == index.applied_lsn
                    and len(index) == store_vectors.get(name, 0),
                    "dim": index.spec.dim if hasattr(index, "spec") else None,
                }
                for name, index in self.indexes.items()
            },
            "store_bytes": self.store.file_size(),
            "cache": self.cache.stats(),
        }

    def _consistent_snapshot(self, attempts: int = 5) -> tuple[int, dict[str, int]]:
        """(store LSN, vectors per space) read while this process's indexes sit at that LSN.

        Other processes may commit meanwhile: retry a few times, then report what was seen
        (a non-zero lag is then the truth: this process is behind that snapshot).
        """
        for _ in range(attempts):
            with self._write_lock:
                applied = self._follow_locked()
                last, counts = self.store.vector_counts()
                if last == applied:
                    return last, counts
        return last, counts

    # answers -----------------------------------------------------------------------------
    def ask(
        self,
        query: str | Query,
        k: int = 5,
        filters: Filters | None = None,
        mode: str = "hybrid",
        generator: Any | None = None,
    ) -> Any:
        """A cited :class:`~edgerag.answer.Answer`: retrieve, rerank, prompt, generate, ground.

        ``generator`` is any :class:`~edgerag.generation.Generator`; the offline extractive
        answerer by default.
        """
        from edgerag.answer import ask

        return ask(self, query, k=k, filters=filters, mode=mode, generator=generator)

    def ask_stream(
        self,
        query: str | Query,
        k: int = 5,
        filters: Filters | None = None,
        mode: str = "hybrid",
        generator: Any | None = None,
    ) -> Any:
        """Events of an answer: ``sources`` first, then ``token`` pieces, then ``done``."""
        from edgerag.answer import ask_stream

        return ask_stream(self, query, k=k, filters=filters, mode=mode, generator=generator)


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` so a concurrent reader sees the old or the new text, never half."""
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
