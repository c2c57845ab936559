"""Query → per-modality parts → fused vectors.

A question may carry text, a photo and a voice clip. Each becomes one or more *parts*: a vector
in some space plus, where it has words, text for BM25. Early fusion combines the parts of each
space into ONE weighted, normalised vector (one ANN search per space, one BM25); late fusion
searches every part on its own and merges the ranked lists with RRF.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgerag.encoders.base import normalize
from edgerag.errors import ConfigError, InputError
from edgerag.types import Query

if TYPE_CHECKING:
    from edgerag.engine import Engine

FUSIONS = ("early", "late")
TEXT, VISUAL, JOINT, IMAGETEXT = "text", "visual", "joint", "imagetext"
# A text-only query's image hits in the `imagetext` space count from this cosine up. On the
# held-out sets (benchmarks/joint_bench.py) 0.3 lets 5 % of off-topic queries (WordNet glosses)
# show an image and keeps 14 % of names' own images: text→image without a photo stays
# conservative; a query photo is never gated.
IMAGE_MIN_SIM = 0.3


@dataclass
class Part:
    modality: str  # the query modality it came from: "text" | "image" | "audio"
    space: str
    vector: np.ndarray  # (dim,) unit norm
    text: str | None  # words for BM25 (None for pure-visual parts)
    weight: float = 1.0


@dataclass
class EncodedQuery:
    parts: list[Part]
    timings_ms: dict[str, float] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # modality → text searched with
    # modality → words literally given, read (caption, OCR) or heard: what an answer quotes
    read: dict[str, str] = field(default_factory=dict)
    photo_vector: np.ndarray | None = None  # the photo's head vector (text space), if any

    def fused(self) -> dict[str, np.ndarray]:
        """Early fusion: one weighted, normalised vector per space."""
        out: dict[str, np.ndarray] = {}
        for space in dict.fromkeys(p.space for p in self.parts):
            vecs = [p.weight * p.vector for p in self.parts if p.space == space]
            out[space] = normalize(np.sum(vecs, axis=0)[None, :])[0]
        return out

    def bm25_text(self) -> str:
        return " ".join(p.text for p in self.parts if p.text and p.space == TEXT)


def _read(value: bytes | str | Path, what: str) -> tuple[str, bytes]:
    if isinstance(value, bytes | bytearray):
        return f"query {what}", bytes(value)
    path = Path(value)
    try:
        return str(path), path.read_bytes()
    except OSError as exc:
        raise InputError(str(path), f"cannot read query {what}: {exc.strerror or exc}") from exc


def encode_query(engine: Engine, query: Query, ocr: bool = True) -> EncodedQuery:
    """Encode every modality of ``query`` into its parts (text encoder batched once)."""
    weights = {"text": 1.0, "image": 1.0, "audio": 1.0, **(query.weights or {})}
    unknown = set(weights) - {"text", "image", "audio"}
    if unknown:
        raise ConfigError(f"unknown query weights {sorted(unknown)}; use text, image, audio")
    encoded = EncodedQuery(parts=[])
    texts: dict[str, str] = {}
    if query.text and query.text.strip():
        texts["text"] = query.text
        encoded.read["text"] = query.text
    image_visual = image_probs = None
    if query.image is not None:
        media = engine.media
        name, data = _read(query.image, "image")
        head = engine.joint_head
        try:
            image_text, read, image_visual, image_probs, ms = media.query_image_probs(
                data, ocr=ocr, describe=head is None
            )
        except InputError as exc:
            raise InputError(name, exc.reason) from exc
        encoded.timings_ms.update({f"image_{k}": v for k, v in ms.items()})
        if head is not None:
            # The head speaks for what the photo shows; unsure ImageNet words ("switch" for a
            # drawn battery) would only pull the query towards passages about switches.
            image_text = _confident_text(media, read, image_probs)
        if image_text.strip():
            texts["image"] = image_text
        if read.strip():
            encoded.read["image"] = read
    if query.audio is not None:
        name, data = _read(query.audio, "audio")
        try:
            transcript, ms = engine.media.query_audio(data)
        except InputError as exc:
            raise InputError(name, exc.reason) from exc
        encoded.timings_ms.update({f"audio_{k}": v for k, v in ms.items()})
        if transcript.strip():
            texts["audio"] = transcript
            encoded.read["audio"] = transcript
    if not texts and image_visual is None:
        raise ConfigError("empty query: give text, an image or audio with speech")
    t0 = time.perf_counter()
    given = _given_text_vector(engine, query) if "text" in texts else None
    to_encode = [m for m in texts if not (m == "text" and given is not None)]
    vectors = {"text": given} if given is not None else {}
    if to_encode:
        encoded_texts = engine.encoder.encode([texts[m] for m in to_encode])
        vectors.update(zip(to_encode, encoded_texts, strict=True))
    for modality, text in texts.items():
        encoded.parts.append(Part(modality, TEXT, vectors[modality], text, weights[modality]))
    encoded.timings_ms["encode"] = (time.perf_counter() - t0) * 1000
    if image_visual is not None and VISUAL in engine.indexes:
        encoded.parts.append(Part("image", VISUAL, image_visual, None, weights["image"]))
    encoded.texts = texts
    _add_joint_parts(engine, query, encoded, weights)
    _add_head_parts(engine, encoded, image_visual, image_probs, weights)
    return encoded


def _given_text_vector(engine: Engine, query: Query) -> np.ndarray | None:
    """``query.text_vector`` as a unit (dim,) vector, checked against the text encoder's dim."""
    if query.text_vector is None:
        return None
    vec = np.asarray(query.text_vector, dtype=np.float32).reshape(-1)
    if vec.shape[0] != engine.encoder.dim or not np.isfinite(vec).all() or not vec.any():
        raise ConfigError(
            f"query text_vector must be {engine.encoder.dim} finite values, not all zero (this "
            f"collection's text encoder), got {vec.shape[0]}"
        )
    return normalize(vec[None, :])[0]


def _confident_text(media: object, read: str, probs: np.ndarray) -> str:
    """Words read in the photo plus the labels confident enough to be written into an item."""
    from edgerag.ingest.extract.image import labels_text
    from edgerag.ingest.media import LABEL_TEXT_MIN_PROB

    top = media.visual.top_labels(probs[None, :], 3)[0]  # type: ignore[attr-defined]
    sure = [(c, p) for c, p in top if p >= LABEL_TEXT_MIN_PROB]
    return "\n".join(t for t in (read, labels_text(sure) if sure else "") if t.strip())


def _add_head_parts(
    engine: Engine,
    encoded: EncodedQuery,
    visual: np.ndarray | None,
    probs: np.ndarray | None,
    weights: dict[str, float],
) -> None:
    """The trained head's ``imagetext`` space: a phrase is its MiniLM vector, a photo its head
    vector; early fusion sums them into one vector for one search there.

    A text-only query searches it too (text→image) but keeps only images at or above
    ``IMAGE_MIN_SIM``: the space holds nothing but images, so its top hit is always an image,
    relevant or not, and must earn its place in a text answer.
    """
    head = engine.joint_head
    if head is None:
        return
    if visual is not None and probs is not None:
        # The photo in words' space: it also finds the passages about what it shows (image→text).
        t0 = time.perf_counter()
        vec = head.project_probs(visual[None, :], probs[None, :])[0]
        encoded.timings_ms["head"] = (time.perf_counter() - t0) * 1000
        encoded.photo_vector = vec
        encoded.parts.append(Part("image", TEXT, vec, None, weights["image"]))
        if IMAGETEXT in engine.indexes:
            encoded.parts.append(Part("image", IMAGETEXT, vec, None, weights["image"]))
    if IMAGETEXT not in engine.indexes:
        return
    for part in list(encoded.parts):
        if part.space == TEXT and part.modality in ("text", "audio"):
            encoded.parts.append(Part(part.modality, IMAGETEXT, part.vector, None, part.weight))


def _add_joint_parts(
    engine: Engine, query: Query, encoded: EncodedQuery, weights: dict[str, float]
) -> None:
    """CLIP-class joint space: text and images meet natively (only when weights are configured)."""
    clip = engine.clip
    if clip is None or JOINT not in engine.indexes:
        return
    t0 = time.perf_counter()
    if query.text:
        vec = clip.encode_text([query.text])[0]
        encoded.parts.append(Part("text", JOINT, vec, None, weights["text"]))
    if query.image is not None:
        from edgerag.ingest.extract.image import decode_image  # media extra

        name, data = _read(query.image, "image")
        image = decode_image(name, data, engine.config.limits).image
        vec = clip.encode_images([image])[0]
        encoded.parts.append(Part("image", JOINT, vec, None, weights["image"]))
    encoded.timings_ms["joint_encode"] = (time.perf_counter() - t0) * 1000
