"""The ``imagetext`` space: images and video frames projected into the text space by the head.

Every image item gets one 384-d vector from :class:`~edgerag.encoders.joint.JointHead`; a query
phrase is its MiniLM vector, a query photo its head vector, and a photo + phrase the weighted sum
of both: ONE vector, ONE search in this space (early fusion across aligned modalities).

It is a space of its own, not mixed into ``text``: measured in ``benchmarks/joint_bench.py``,
text chunks that merely mention a word outrank every image in a shared index, and the space's
own encoder id/version lets a new head re-embed the image vectors alone, from what the store
already holds (visual features + top-5 labels), without decoding a single image again.

User-provided CLIP/SigLIP weights (``EngineConfig.clip_model``) outrank the head: with them the
``joint`` space is used and this one is not written.

Caption transfer (:func:`transfer_captions`, on by default, ``EngineConfig.caption_transfer``):
after an ingest, an image or frame with no words of its own borrows the captions of its nearest
captioned images in the same collection; on the held-out sets head + transfer measured t→i R@5
0.713 / 0.555 against the head's 0.450 / 0.540 (``docs/notes/joint.md``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from edgerag.encoders.base import normalize
from edgerag.ingest.documents import TEXT_SPACE
from edgerag.store.ops import SpaceVectors
from edgerag.types import SpaceSpec

if TYPE_CHECKING:
    from edgerag.encoders.joint import JointHead
    from edgerag.engine import Engine
    from edgerag.ingest.extract.image import CaptionBank

logger = logging.getLogger(__name__)

IMAGETEXT_SPACE = "imagetext"
VISUAL_SPACE = "visual"
# Caption transfer (visual kNN among the collection's captioned images): the settings
# benchmarks/joint_bench.py measured with (3 neighbours, EfficientNet-Lite0 cosine ≥ 0.3).
TRANSFER_K = 3
TRANSFER_MIN_SIM = 0.3
TRANSFER_BATCH = 256  # documents re-applied per transaction (and per MiniLM batch)


def head_space_vectors(
    head: JointHead, keys: np.ndarray, visual: np.ndarray, labels: list[Any]
) -> SpaceVectors:
    """The ``imagetext`` vectors of image items from their features and stored labels."""
    return SpaceVectors(head.id, head.version, keys, head.project_labels(visual, labels))


def with_transfer(head_vectors: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    """head + transfer: the head's vector plus the MiniLM vector of the borrowed captions,
    normalised (rows without borrowed words, all-zero ``transfer`` rows, keep the head's)."""
    return normalize(np.asarray(head_vectors, np.float32) + np.asarray(transfer, np.float32))


def _transfer_vectors(encoder: Any, borrowed: list[list[str]]) -> np.ndarray:
    """MiniLM vectors of each item's borrowed captions ("; "-joined); zero rows for none."""
    out = np.zeros((len(borrowed), encoder.dim), dtype=np.float32)
    rows = [i for i, words in enumerate(borrowed) if words]
    if rows:
        out[rows] = encoder.encode(["; ".join(borrowed[i]) for i in rows])
    return out


def _wordless(meta: dict[str, Any]) -> bool:
    """No caption, nothing read, nothing borrowed yet: an image that has only its pixels."""
    return not any(str(meta.get(k) or "").strip() for k in ("caption", "ocr_text")) and not (
        meta.get("similar_captions")
    )


def _caption(row: dict[str, Any]) -> str:
    return str(row["metadata"].get("caption") or "").strip()


def _image_rows(engine: Engine) -> dict[int, dict[str, Any]]:
    store = engine.store
    return store.items([int(k) for k in store.filter_keys({"modality": "image"})])


def collection_caption_bank(
    engine: Engine, rows: dict[int, dict[str, Any]] | None = None
) -> CaptionBank:
    """The collection's captioned images (their visual vectors and captions) as a bank."""
    from edgerag.ingest.extract.image import CaptionBank

    rows = _image_rows(engine) if rows is None else rows
    captioned = np.array(
        sorted(k for k, r in rows.items() if _caption(r)),
        dtype=np.int64,
    )
    present, vectors = engine.store.vectors(VISUAL_SPACE, captioned)
    captions = [str(rows[int(k)]["metadata"]["caption"]) for k in present]
    return CaptionBank(normalize(vectors) if len(present) else None, captions)


def transfer_captions(engine: Engine, doc_ids: list[str]) -> int:
    """Wordless images and frames borrow the captions of their nearest captioned images in the
    collection (visual kNN): the words join the item's text (text space, BM25) and its
    ``imagetext`` vector becomes head + transfer. Returns the items changed.

    Called after an ingest with the documents it added: their wordless images are looked up,
    and when those documents brought captions, every wordless image of the collection (the
    bank grew, so the order of ingests does not matter). One re-applied op per changed
    document, through the ordinary op path (so replicas and the log see it). Cost: a text-only
    ingest reads its own item rows; otherwise one scan of the collection's image rows and one
    (wordless × captioned) product of 1280-d vectors.
    """
    store = engine.store
    added_rows = {
        k: r
        for doc_id in doc_ids
        for k, r in store.items(store.doc_keys(doc_id)).items()
        if r["modality"] == "image"
    }
    if not added_rows:  # a text-only ingest costs one lookup per document, no scan
        return 0
    new_captions = any(_caption(r) for r in added_rows.values())
    if not new_captions and not any(_wordless(r["metadata"]) for r in added_rows.values()):
        return 0
    candidates = _image_rows(engine) if new_captions else added_rows
    targets: dict[str, list[int]] = {}
    for key, row in sorted(candidates.items()):
        if _wordless(row["metadata"]):
            targets.setdefault(row["doc_id"], []).append(key)
    if not targets:
        return 0
    rows = candidates if new_captions else _image_rows(engine)
    bank = collection_caption_bank(engine, rows)
    if not len(bank):
        return 0
    borrowed: dict[int, list[str]] = {}
    for keys in targets.values():
        present, visual = engine.store.vectors(VISUAL_SPACE, np.array(keys, dtype=np.int64))
        for key, vector in zip(present, normalize(visual), strict=True):
            if words := bank.describe(vector, TRANSFER_K, TRANSFER_MIN_SIM):
                borrowed[int(key)] = words
    if not borrowed:
        return 0
    docs = [d for d, keys in targets.items() if not borrowed.keys().isdisjoint(keys)]
    for start in range(0, len(docs), TRANSFER_BATCH):  # one transaction per batch of documents
        ops = [engine.store.materialize(d) for d in docs[start : start + TRANSFER_BATCH]]
        _add_borrowed(engine, ops, borrowed)
        engine.apply_many(ops)
    logger.info("caption transfer: %d wordless image items borrowed words", len(borrowed))
    return len(borrowed)


def _add_borrowed(engine: Engine, ops: list[Any], borrowed: dict[int, list[str]]) -> None:
    """Write the borrowed captions into the ops' items (metadata, text) and vectors: the text
    vector of the new text, ``imagetext`` = head + transfer. Two MiniLM batches in all."""
    items = [it for op in ops for it in op.items if it.key in borrowed]
    for item in items:
        item.metadata["similar_captions"] = borrowed[item.key]
        item.text = f"{item.text}\n{'; '.join(borrowed[item.key])}"
    keys = [it.key for it in items]
    new = {
        TEXT_SPACE: dict(zip(keys, engine.encoder.encode([it.text for it in items]), strict=True)),
        IMAGETEXT_SPACE: dict(
            zip(keys, _transfer_vectors(engine.encoder, [borrowed[k] for k in keys]), strict=True)
        ),
    }
    for op in ops:
        for space, by_key in new.items():
            sv = op.vectors.get(space)
            if sv is None:
                continue
            rows = [i for i, k in enumerate(sv.keys) if int(k) in by_key]
            vectors = np.array(sv.vectors, dtype=np.float32)
            fresh = np.stack([by_key[int(sv.keys[i])] for i in rows]) if rows else None
            if fresh is not None:
                vectors[rows] = (
                    fresh if space == TEXT_SPACE else with_transfer(vectors[rows], fresh)
                )
            op.vectors[space] = SpaceVectors(sv.encoder, sv.version, sv.keys, vectors)


def reembed_images(engine: Engine, head: JointHead) -> int:
    """A new head version: re-project only the image items, from the store. Returns the count."""
    store = engine.store
    stored = store.spaces().get(IMAGETEXT_SPACE)
    if stored is None or (stored.encoder, stored.version) == (head.id, head.version):
        return 0
    stale = store.stale_keys(IMAGETEXT_SPACE, head.id, head.version)
    engine._open_space(SpaceSpec(IMAGETEXT_SPACE, head.id, head.version, head.dim))
    docs = {row["doc_id"] for row in store.items([int(k) for k in stale]).values()}
    logger.info("re-embedding %d image items with joint head %s", len(stale), head.version)
    for doc_id in sorted(docs):
        op = store.materialize(doc_id)
        visual = op.vectors.get(VISUAL_SPACE)
        if visual is None:
            continue
        rows = store.items([int(k) for k in visual.keys])
        labels = [rows[int(k)]["metadata"].get("labels", []) for k in visual.keys]
        vectors = head_space_vectors(head, visual.keys, visual.vectors, labels)
        # items that borrowed captions keep head + transfer (see transfer_captions)
        borrowed = [rows[int(k)]["metadata"].get("similar_captions") or [] for k in visual.keys]
        if any(borrowed):
            transfer = _transfer_vectors(engine.encoder, borrowed)
            vectors.vectors = with_transfer(vectors.vectors, transfer)
        op.vectors[IMAGETEXT_SPACE] = vectors
        engine.apply(op)
    return len(stale)


__all__ = [
    "IMAGETEXT_SPACE",
    "collection_caption_bank",
    "head_space_vectors",
    "reembed_images",
    "transfer_captions",
    "with_transfer",
]
