"""Small value types shared by every layer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]  # (n, dim), rows L2-normalised for the cosine metric
Keys = npt.NDArray[np.int64]  # (n,) item keys


class Modality(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"


def item_key(doc_id: str, position: int) -> int:
    """Stable signed 63-bit key of an item, derived from its document id and position.

    Stable keys make replaying an op idempotent and let every replica agree on ids.
    """
    digest = hashlib.blake2b(f"{doc_id}\x00{position}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class SearchResult:
    """Batch result of a vector search: ``keys`` (nq, k) padded with -1, ``scores`` (nq, k).

    Scores are similarities: higher is better (cosine / inner product). ``labels``, when an
    engine sets it, holds the engine's own positions of ``keys`` (same shape): a hint the
    originals try as rows before searching their key map (see ``Originals.rows_of``).
    """

    keys: Keys
    scores: npt.NDArray[np.float32]
    labels: Keys | None = None


@dataclass(frozen=True)
class SpaceSpec:
    """A named vector space of a collection."""

    name: str
    encoder: str
    version: str
    dim: int
    metric: str = "cos"  # "cos" | "ip" | "l2"


@dataclass
class Chunk:
    """One item's content before encoding: text plus provenance."""

    text: str
    position: int
    modality: Modality = Modality.TEXT
    page: int | None = None
    char_start: int | None = None
    char_end: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hit:
    """One ranked search result with its provenance and per-component scores."""

    key: int
    id: str
    doc_id: str
    source: str
    modality: str
    score: float
    text: str
    page: int | None = None
    char_start: int | None = None
    char_end: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "doc_id": self.doc_id,
            "source": self.source,
            "modality": self.modality,
            "score": self.score,
            "text": self.text,
            "page": self.page,
            "char_start": self.char_start,
            "char_end": self.char_end,
            "t_start": self.t_start,
            "t_end": self.t_end,
            "metadata": self.metadata,
            "scores": self.scores,
        }


@dataclass
class Query:
    """A question given as text, a photo, a voice clip, or several at once.

    Attributes:
        text: the question text.
        image: image bytes or a path.
        audio: audio bytes or a path.
        weights: per-modality weight when the modalities are fused ("text", "image", "audio").
        text_vector: ``text``'s vector, when the caller already has it from this collection's
            text encoder (a fleet router encodes a question once for every shard). The caller
            vouches for the encoder; only the shape is checked.
    """

    text: str | None = None
    image: bytes | str | None = None
    audio: bytes | str | None = None
    weights: dict[str, float] | None = None
    text_vector: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, query: str | Query) -> Query:
        return query if isinstance(query, Query) else cls(text=query)

    def describe(self) -> str:
        parts = [repr(self.text)] if self.text else []
        parts += [m for m in ("image", "audio") if getattr(self, m) is not None]
        return " + ".join(parts) or "(empty)"


@dataclass
class SearchResponse:
    hits: list[Hit]
    timings_ms: dict[str, float]
    mode: str
    plan: str = ""
    # The words the query gave, by modality: "text" as typed, "image" as read in the photo
    # (caption, alt text, OCR; not guessed labels), "audio" as heard. The answerer's question.
    query_texts: dict[str, str] = field(default_factory=dict)
    # The query photo in the text space (the joint head's vector), for the answer composer to
    # score units against what the photo shows; None without a photo or a head. Not serialised.
    photo_vector: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def heard(self) -> str | None:
        """The transcript of a spoken question (shown to the user as "heard: …")."""
        return self.query_texts.get("audio")

    def to_dict(self) -> dict[str, Any]:
        out = {
            "hits": [h.to_dict() for h in self.hits],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "mode": self.mode,
            "plan": self.plan,
            "query_texts": self.query_texts,
        }
        if self.heard is not None:
            out["heard"] = self.heard
        return out


@dataclass
class IngestReport:
    """What one ``ingest`` call did, input by input."""

    added: list[str] = field(default_factory=list)  # doc ids written (new or changed)
    unchanged: list[str] = field(default_factory=list)  # same content hash: nothing done
    errors: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)
    items: int = 0
    lsn: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors
