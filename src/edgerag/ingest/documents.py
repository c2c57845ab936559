"""Inputs → ops: read, hash, extract, chunk and encode one document at a time."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from edgerag.encoders.base import TextEncoder
from edgerag.errors import InputError, InputTooLargeError
from edgerag.generation.unit_vectors import encode_items
from edgerag.ingest.chunking import TokenSpans, chunk_blocks, chunk_pages
from edgerag.ingest.extract import extract, supported_suffixes
from edgerag.ingest.limits import Limits
from edgerag.ingest.media import MEDIA_SUFFIXES, media_modality
from edgerag.ingest.structure import context_text
from edgerag.privacy.pii import Scrubber
from edgerag.privacy.scrub import scrub_extracted, scrub_media
from edgerag.store.ops import UPSERT, DocumentRecord, ItemRecord, Op, SpaceVectors
from edgerag.types import item_key

logger = logging.getLogger(__name__)

TEXT_SPACE = "text"
VISUAL_SPACE = "visual"
JOINT_SPACE = "joint"

# What ``Engine.ingest`` accepts: a path, raw bytes with a name, or many of them.
InputLike = Union[str, Path, tuple[str, bytes]]


@dataclass
class RawInput:
    source: str  # shown in errors and results
    doc_id: str
    data: bytes


def expand_inputs(
    inputs: InputLike | Iterable[InputLike], limits: Limits
) -> Iterator[RawInput | InputError]:
    """Yield one raw input per file (directories are walked); problems are yielded, not raised,
    so one bad file never stops a batch."""
    if isinstance(inputs, str | Path | tuple):
        inputs = [inputs]  # type: ignore[list-item]
    for item in inputs:  # type: ignore[union-attr]
        if isinstance(item, tuple):
            name, data = item
            if len(data) > limits.max_file_bytes:
                yield InputTooLargeError(name, _too_large(len(data), limits))
            else:
                yield RawInput(source=name, doc_id=name, data=bytes(data))
            continue
        yield from _expand_path(Path(item), limits)


def is_media(source: str) -> bool:
    """Images, audio and video go through the media pipeline; everything else is text."""
    return media_modality(source) is not None


def count_inputs(paths: Iterable[str | Path]) -> int:
    """How many inputs ``expand_inputs`` will yield for ``paths`` (for a progress total)."""
    suffixes = supported_suffixes() | set(MEDIA_SUFFIXES)
    total = 0
    for item in paths:
        path = Path(item)
        if path.is_dir():
            total += sum(1 for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        else:
            total += 1
    return total


def _expand_path(path: Path, limits: Limits) -> Iterator[RawInput | InputError]:
    if path.is_dir():
        suffixes = supported_suffixes() | set(MEDIA_SUFFIXES)
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            if child.suffix.lower() in suffixes:
                yield from _expand_path(child, limits)
        return
    source = str(path)
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            yield InputTooLargeError(source, _too_large(size, limits))
            return
        data = path.read_bytes()
    except FileNotFoundError:
        yield InputError(source, "no such file")
        return
    except OSError as exc:
        yield InputError(source, f"cannot read: {exc.strerror or exc}")
        return
    yield RawInput(source=source, doc_id=str(path.resolve()), data=data)


def _too_large(size: int, limits: Limits) -> str:
    return f"{size:,} bytes is over the {limits.max_file_bytes:,}-byte limit (max_file_bytes)"


def content_hash(data: bytes, metadata: Mapping[str, Any]) -> str:
    """Hash of content + metadata: changing either re-ingests, changing neither is a no-op."""
    h = hashlib.sha256(data)
    h.update(repr(sorted(metadata.items())).encode())
    return h.hexdigest()


def _document(
    raw: RawInput,
    extracted: Any,
    metadata: Mapping[str, Any],
    chash: str,
    scrub: Scrubber | None = None,
) -> DocumentRecord:
    """The document row: what extraction found about the file, then the user's metadata."""
    return DocumentRecord(
        doc_id=raw.doc_id,
        source=raw.source,
        modality=extracted.modality.value,
        mime=extracted.mime,
        content_hash=chash,
        size=len(raw.data),
        title=extracted.title,
        metadata={**extracted.metadata, **dict(metadata)},
        redactions=scrub.report() if scrub is not None else {},
    )


def build_op(
    raw: RawInput,
    metadata: Mapping[str, Any],
    encoder: TextEncoder,
    spans: TokenSpans,
    chunk_tokens: int,
    chunk_overlap: int,
    limits: Limits,
    chash: str,
    clip: Any = None,
    scrub: Scrubber | None = None,
    unit_vectors: str = "late",
) -> Op:
    """Extract, chunk and encode one input into an upsert op (raises InputError).

    ``scrub`` redacts PII from the extracted text before anything else sees it.
    ``unit_vectors``: how the answer units' vectors are computed (see
    :func:`edgerag.generation.unit_vectors.encode_items`)."""
    extracted = extract(raw.source, raw.data, limits)
    if scrub is not None:
        scrub_extracted(extracted, scrub)
    if extracted.blocks:
        chunks = chunk_blocks(
            extracted.blocks,
            extracted.pages,
            extracted.title,
            spans,
            size=chunk_tokens,
            overlap=chunk_overlap,
        )
    else:
        chunks = chunk_pages(extracted.pages, spans, size=chunk_tokens, overlap=chunk_overlap)
        if extracted.title:  # no structure, but the title still heads every chunk
            for chunk in chunks:
                chunk.metadata["section"] = extracted.title
    if not chunks:
        raise InputError(raw.source, "no text to index")
    items = [
        ItemRecord(
            key=item_key(raw.doc_id, c.position),
            item_id=f"{raw.doc_id}#{c.position}",
            position=c.position,
            modality=c.modality.value,
            text=c.text,
            page=c.page,
            char_start=c.char_start,
            char_end=c.char_end,
            t_start=c.t_start,
            t_end=c.t_end,
            metadata=dict(c.metadata),
        )
        for c in chunks
    ]
    # Contextual chunk headers: the section path is embedded with the text (not stored in it).
    embedded = [context_text(c.text, c.metadata) for c in chunks]
    vectors, units = encode_items(encoder, items, embedded, unit_vectors)
    keys = [it.key for it in items]
    document = _document(raw, extracted, metadata, chash, scrub)
    key_array = np.array(keys, dtype=np.int64)
    spaces = {TEXT_SPACE: SpaceVectors(encoder.id, encoder.version, key_array, vectors)}
    if clip is not None:
        joint = clip.encode_text(embedded)
        spaces[JOINT_SPACE] = SpaceVectors(clip.id, clip.version, key_array, joint)
    return Op(
        kind=UPSERT, doc_id=raw.doc_id, document=document, items=items, vectors=spaces, units=units
    )


def build_media_op(
    raw: RawInput,
    metadata: Mapping[str, Any],
    encoder: TextEncoder,
    media: Any,
    clip: Any,
    chash: str,
    extracted: Any = None,
    scrub: Scrubber | None = None,
    head: Any = None,
) -> Op:
    """Image / audio / video → items with a text-space vector each (from what was read,
    recognised or heard), plus visual (and joint, or head ``imagetext``) vectors for images
    and frames.

    ``extracted``: the ``MediaDocument`` when the caller already extracted it (images are
    extracted in batches, see ``ingest.pipeline``)."""
    if extracted is None:
        extracted = media.extract(raw.source, raw.data)
    if scrub is not None:  # OCR text, transcripts, captions, EXIF
        scrub_media(extracted, scrub)
    if not extracted.items:
        raise InputError(raw.source, "nothing to index (no frames, no speech)")
    fallback = Path(raw.source).stem.replace("_", " ").replace("-", " ")
    items = [
        ItemRecord(
            key=item_key(raw.doc_id, m.position),
            item_id=f"{raw.doc_id}#{m.position}",
            position=m.position,
            modality=m.modality.value,
            text=m.text or fallback,
            t_start=m.t_start,
            t_end=m.t_end,
            metadata=dict(m.metadata),
            thumbnail=m.thumbnail,
        )
        for m in extracted.items
    ]
    keys = np.array([it.key for it in items], dtype=np.int64)
    text_vectors = encoder.encode([it.text for it in items])
    spaces = {TEXT_SPACE: SpaceVectors(encoder.id, encoder.version, keys, text_vectors)}
    with_image = [i for i, m in enumerate(extracted.items) if m.image is not None]
    if with_image:
        images = [extracted.items[i].image for i in with_image]
        visual = _visual_vectors(media, [extracted.items[i] for i in with_image])
        spaces[VISUAL_SPACE] = SpaceVectors(
            media.visual_encoder_id, media.visual_encoder_version, keys[with_image], visual
        )
        if head is not None and clip is None:  # user CLIP weights outrank the trained head
            from edgerag.ingest.joint import IMAGETEXT_SPACE, head_space_vectors

            labels = [items[i].metadata.get("labels", []) for i in with_image]
            spaces[IMAGETEXT_SPACE] = head_space_vectors(head, keys[with_image], visual, labels)
        if clip is not None:
            spaces[JOINT_SPACE] = SpaceVectors(
                clip.id, clip.version, keys[with_image], clip.encode_images(images)
            )
    document = _document(raw, extracted, metadata, chash, scrub)
    return Op(kind=UPSERT, doc_id=raw.doc_id, document=document, items=items, vectors=spaces)


def _visual_vectors(media: Any, items: list[Any]) -> np.ndarray:
    """The features extraction already computed with the labels (same forward pass); a second
    pass only for items that came without them."""
    if all(it.visual is not None for it in items):
        return np.stack([it.visual for it in items]).astype(np.float32, copy=False)
    return np.asarray(media.visual_vectors([it.image for it in items]), dtype=np.float32)
