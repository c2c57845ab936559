"""The ingest pipeline: inputs → prepared upsert ops, computed ahead of the writer.

In a plain loop, preparing an input (extract, chunk, tokenise, encode) and writing it (one
SQLite transaction with its fsync, the index add, a checkpoint now and then) take turns on one
thread. Here preparation runs in a worker thread up to ``lookahead`` inputs ahead while the
caller writes, so the fsync and the index add overlap the next encode (SQLite, onnxruntime and
faiss release the GIL while they work). Consecutive images are extracted in batches: one
forward pass of the visual model per batch instead of one per image.

Results come out in input order and every input is still its own transaction: the caller
writes each op as before. Per-input problems (``InputError``) become ``Prepared`` errors; any
other exception stops the pipeline and is raised to the caller at the input that caused it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from edgerag.errors import InputError
from edgerag.ingest.documents import RawInput, content_hash, is_media
from edgerag.ingest.media import media_modality
from edgerag.store.ops import Op
from edgerag.types import Modality

T = TypeVar("T")

LOOKAHEAD = 2  # inputs prepared ahead of the writer: enough to overlap, little memory held
IMAGE_BATCH = 16  # images per visual-model forward pass (the model's own batch size)

ADDED, UNCHANGED, ERROR = "added", "unchanged", "error"


@dataclass
class Prepared:
    """One input, ready for the writer: an op to write, or why there is none."""

    source: str
    doc_id: str
    outcome: str  # ADDED (``op`` to write) | UNCHANGED | ERROR (``reason``)
    op: Op | None = None
    reason: str = ""


BuildText = Callable[[RawInput, Mapping[str, Any], str], Op]
BuildMedia = Callable[[RawInput, Mapping[str, Any], str, Any], Op]


class Preparer:
    """Turns raw inputs into ``Prepared`` results, in input order.

    Args:
        metadata: The ingest call's metadata (a ``doc_id`` key overrides every input's id).
        stored_hash: The content hash stored for a doc id (``None`` when absent).
        build_text: ``(raw, metadata, content hash) → op`` for text documents.
        build_media: ``(raw, metadata, content hash, extracted or None) → op`` for media.
        extract_images: ``[(source, bytes)] → [MediaDocument | InputError]``, batched; ``None``
            extracts images one by one through ``build_media``.
        image_batch: Consecutive images extracted together.
    """

    def __init__(
        self,
        metadata: Mapping[str, Any],
        stored_hash: Callable[[str], str | None],
        build_text: BuildText,
        build_media: BuildMedia,
        extract_images: Callable[[list[tuple[str, bytes]]], list[Any]] | None = None,
        image_batch: int = IMAGE_BATCH,
    ) -> None:
        self._doc_id = metadata.get("doc_id")
        self._meta = {k: v for k, v in metadata.items() if k != "doc_id"}
        self._stored_hash = stored_hash
        self._build_text = build_text
        self._build_media = build_media
        self._extract_images = extract_images
        self._image_batch = max(1, image_batch)
        # Content hashes of ops prepared here but maybe not written yet: an input repeated
        # within one call is compared with what the writer WILL hold when it reaches it.
        self._planned: dict[str, str] = {}

    def run(self, raws: Iterable[RawInput | InputError]) -> Iterator[Prepared]:
        images: list[tuple[RawInput, str]] = []
        for raw in raws:
            if isinstance(raw, InputError):
                yield from self._images(images)
                yield Prepared(raw.source, raw.source, ERROR, reason=raw.reason)
                continue
            raw.doc_id = str(self._doc_id if self._doc_id is not None else raw.doc_id)
            chash = content_hash(raw.data, self._meta)
            batched = self._extract_images is not None and _is_image(raw)
            if any(r.doc_id == raw.doc_id for r, _ in images):
                yield from self._images(images)  # so its hash is planned before comparing
            if self._current_hash(raw.doc_id) == chash:
                yield from self._images(images)
                yield Prepared(raw.source, raw.doc_id, UNCHANGED)
            elif batched:
                images.append((raw, chash))
                if len(images) >= self._image_batch:
                    yield from self._images(images)
            else:
                yield from self._images(images)
                yield self._one(raw, chash)
        yield from self._images(images)

    def _current_hash(self, doc_id: str) -> str | None:
        return self._planned[doc_id] if doc_id in self._planned else self._stored_hash(doc_id)

    def _one(self, raw: RawInput, chash: str, extracted: Any = None) -> Prepared:
        try:
            if extracted is not None or is_media(raw.source):
                op = self._build_media(raw, self._meta, chash, extracted)
            else:
                op = self._build_text(raw, self._meta, chash)
        except InputError as exc:
            return Prepared(raw.source, raw.doc_id, ERROR, reason=exc.reason)
        self._planned[raw.doc_id] = chash
        return Prepared(raw.source, raw.doc_id, ADDED, op=op)

    def _images(self, batch: list[tuple[RawInput, str]]) -> Iterator[Prepared]:
        """Extract the pending images together, then build their ops one by one (emptied)."""
        if not batch:
            return
        pending = list(batch)
        batch.clear()
        assert self._extract_images is not None
        docs = self._extract_images([(raw.source, raw.data) for raw, _ in pending])
        for (raw, chash), doc in zip(pending, docs, strict=True):
            if isinstance(doc, InputError):
                yield Prepared(raw.source, raw.doc_id, ERROR, reason=doc.reason)
            else:
                yield self._one(raw, chash, doc)


def _is_image(raw: RawInput) -> bool:
    return media_modality(raw.source) is Modality.IMAGE


_DONE = object()


def pipelined(items: Iterator[T], lookahead: int = LOOKAHEAD) -> Iterator[T]:
    """Yield ``items`` in order while a worker thread computes up to ``lookahead`` ahead.

    An exception raised by ``items`` is re-raised here, after the items before it. Closing
    this generator (or an exception in the consumer) stops the worker after its current item.
    """
    if lookahead <= 0:
        yield from items
        return
    slots: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=lookahead)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((False, _DONE))
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))

    worker = threading.Thread(target=work, name="edgerag-ingest-prepare", daemon=True)
    worker.start()
    try:
        while True:
            ok, value = slots.get()
            if ok:
                yield value
            elif value is _DONE:
                return
            else:
                raise value
    finally:
        stop.set()
        worker.join()
