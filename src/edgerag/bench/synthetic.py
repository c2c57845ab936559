"""Synthetic collections for benchmarks: clustered unit vectors + real payload rows, via ops.

No text encoder runs: each op carries its items' vectors directly, so a 100k × 512 collection
is written through the same op path (SQLite rows + FTS5 + op log + index) as an ingest, but in
seconds instead of an hour of encoding.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgerag.config import EngineConfig
from edgerag.encoders.base import TextEncoder
from edgerag.encoders.fake import HashEncoder
from edgerag.engine import Engine
from edgerag.errors import EncoderError
from edgerag.index.base import IndexConfig
from edgerag.ingest.documents import TEXT_SPACE
from edgerag.store.ops import UPSERT, DocumentRecord, ItemRecord, Op, SpaceVectors
from edgerag.types import SpaceSpec, Vectors, item_key

logger = logging.getLogger(__name__)

# A small vocabulary makes payload text cheap to generate yet realistic for FTS5 and hydration.
_WORDS = (
    "pump seal valve bearing grease pressure alarm torque shaft gland motor sensor filter "
    "coolant flow rate manual inspect replace check operator shift log maintenance discharge "
    "suction impeller housing bolt gasket vibration temperature limit trip reset panel"
).split()


class SyntheticEncoder(HashEncoder):
    """Marks a synthetic space; encodes text by feature hashing so plumbing still works."""

    id = "synthetic-clustered"
    version = "1"


class StoredSpaceEncoder(TextEncoder):
    """Stands in for a collection's encoder when only its stored vectors are used.

    Bench queries are vectors, so the real model (and its load time) is not needed; id,
    version and dim match the stored space so opening the collection re-embeds nothing.
    """

    def __init__(self, spec: SpaceSpec) -> None:
        self.id = spec.encoder
        self.version = spec.version
        self.dim = spec.dim
        self.metric = spec.metric

    def encode(self, texts: Sequence[str]) -> Vectors:
        raise EncoderError(f"{self.id}: opened for benchmarking without its model (vectors only)")


def clustered(
    n: int, dim: int, seed: int = 42, clusters: int = 1000, noise: float = 0.6
) -> Vectors:
    """``n`` unit vectors around ``clusters`` random centres (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, min(clusters, n)), dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 50_000
    for start in range(0, n, step):
        m = min(step, n - start)
        rng_b = np.random.default_rng([seed, start])
        x = centres[rng_b.integers(0, len(centres), m)]
        x += noise * rng_b.standard_normal((m, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + m] = x
    return out


def perturb(base: np.ndarray, count: int, seed: int, scale: float = 0.3) -> Vectors:
    """``count`` unit query vectors: random rows of ``base`` plus Gaussian noise.

    Fresh points near stored ones (not copies), so recall is not trivially 1.
    """
    rng = np.random.default_rng(seed)
    dim = base.shape[1]
    q = base[rng.integers(0, len(base), count)].astype(np.float32)
    q += scale * rng.standard_normal((count, dim), dtype=np.float32) / np.sqrt(dim)
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    out: Vectors = (q / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return out


def item_keys(start: int, stop: int, items_per_doc: int = 500) -> npt.NDArray[np.int64]:
    """The keys an engine gives rows ``start..stop-1`` written as :func:`build_synthetic`
    writes them (``items_per_doc`` per document): 63-bit hashes, not row numbers, so a bare
    index keyed with them maps keys as a collection's index does."""
    rows = range(start, stop)
    keys = (item_key(_doc_id(i // items_per_doc), i % items_per_doc) for i in rows)
    return np.fromiter(keys, dtype=np.int64, count=stop - start)


def _doc_id(doc: int) -> str:
    return f"synthetic-{doc:06d}"


def _payload(rng: np.random.Generator, chars: int) -> str:
    words = rng.choice(_WORDS, size=max(1, chars // 6))
    return " ".join(words.tolist())[:chars]


def _op(
    doc: int,
    start: int,
    vectors: Vectors,
    chars: int,
    rng: np.random.Generator,
    texts: Sequence[str] | None,
) -> Op:
    doc_id = _doc_id(doc)
    items = [
        ItemRecord(
            key=item_key(doc_id, pos),
            item_id=f"{doc_id}#{pos}",
            position=pos,
            modality="text",
            text=texts[start + pos] if texts is not None else _payload(rng, chars),
            page=1 + pos // 4,
            char_start=pos * chars,
            char_end=(pos + 1) * chars,
            metadata={"row": start + pos},
        )
        for pos in range(len(vectors))
    ]
    keys = np.array([it.key for it in items], dtype=np.int64)
    document = DocumentRecord(
        doc_id=doc_id,
        source=f"synthetic/{doc_id}.txt",
        modality="text",
        mime="text/plain",
        content_hash=f"synthetic:{doc}:{start}",
        size=chars * len(items),
        title=doc_id,
        metadata={"cluster_block": doc % 10},
    )
    enc = SyntheticEncoder(vectors.shape[1])
    space = SpaceVectors(enc.id, enc.version, keys, vectors)
    return Op(
        kind=UPSERT, doc_id=doc_id, document=document, items=items, vectors={TEXT_SPACE: space}
    )


def open_synthetic(directory: Path, dim: int, index: IndexConfig) -> Engine:
    """Open a synthetic collection written by :func:`build_synthetic`."""
    config = EngineConfig(encoder="hash", index=index, synchronous="OFF", checkpoint_ops=10**9)
    return Engine.open(directory, config, encoder=SyntheticEncoder(dim))


def build_synthetic(
    directory: Path,
    vectors: Vectors,
    index: IndexConfig,
    items_per_doc: int = 500,
    payload_chars: int = 600,
    seed: int = 0,
    texts: Sequence[str] | None = None,
) -> Engine:
    """Write ``vectors`` as documents of ``items_per_doc`` items through :meth:`Engine.apply`.

    Every item gets a real payload row (text of ``payload_chars``, provenance, metadata) and an
    FTS5 entry, so hydration in the benchmark reads what an ingested collection would hold.
    SQLite runs with ``synchronous=OFF`` here: a throwaway collection need not survive power
    loss, and fsync per op would make building 100k items a matter of minutes.
    ``texts`` (one per vector) replaces the generated payloads.
    """
    if items_per_doc < 1:
        raise ValueError("items_per_doc must be >= 1")
    if texts is not None and len(texts) != len(vectors):
        raise ValueError(f"{len(texts)} texts for {len(vectors)} vectors")
    rng = np.random.default_rng(seed)
    engine = open_synthetic(directory, vectors.shape[1], index)
    for doc, start in enumerate(range(0, len(vectors), items_per_doc)):
        block = vectors[start : start + items_per_doc]
        engine.apply(_op(doc, start, block, payload_chars, rng, texts))
    engine.checkpoint()
    logger.info("synthetic collection %s: %d items", directory, len(vectors))
    return engine


def with_quantization(index: IndexConfig, quantization: str) -> IndexConfig:
    return replace(index, quantization=quantization)


SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field")


def sample_images(
    n: int, photos: Sequence[str] = SAMPLE_PHOTOS, name: str = "img{i:03d}.jpg"
) -> list[tuple[str, bytes]]:
    """JPEG inputs for throughput benchmarks: drawn 1024×768 schematics (with a tag to OCR) and
    rotated scikit-image sample photos, alternating. Deterministic."""
    import io

    from PIL import Image, ImageDraw
    from skimage import data as sk

    arrays = [getattr(sk, photo)() for photo in photos]
    out = []
    for i in range(n):
        if i % 2:
            im = Image.fromarray(arrays[i % len(arrays)]).rotate(i * 7)
        else:
            im = Image.new("RGB", (1024, 768), "white")
            draw = ImageDraw.Draw(im)
            draw.rectangle((100 + i, 200, 700, 500), outline="black", width=4)
            draw.text((120, 220), f"DISCHARGE VALVE V-0{i % 9}", fill="black")
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "JPEG", quality=85)
        out.append((name.format(i=i), buf.getvalue()))
    return out
