"""The encoder contract: a batch of inputs in, L2-normalised float32 rows out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from edgerag.types import Vectors


class TextEncoder(ABC):
    """Encodes text into one vector space.

    Attributes:
        id: stable encoder identifier stored with every vector (e.g. "minilm-l6-int8").
        version: bumps when the same id produces different vectors (re-embed trigger).
        dim: output dimension.
    """

    id: str = ""
    version: str = "1"
    dim: int = 0
    metric: str = "cos"

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> Vectors:
        """Encode a batch; returns (len(texts), dim) float32 with unit-norm rows."""

    def encode_one(self, text: str) -> Vectors:
        return self.encode([text])[0]

    def encode_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[Vectors, list[Vectors]]:
        """Each text's vector, plus one vector per character span ``(start, end)`` of it.

        An encoder that pools token states (MiniLM) pools each span's tokens from the same
        forward pass (late chunking: no extra encode). This fallback, for encoders without
        token states, encodes each span's substring on its own, in one batch.
        """
        flat = [text[a:b] for text, pairs in zip(texts, spans, strict=True) for a, b in pairs]
        vectors = self.encode([*texts, *flat])
        return vectors[: len(texts)], _split(vectors[len(texts) :], spans)


def _split(rows: np.ndarray, spans: Sequence[Sequence[object]]) -> list[Vectors]:
    """``rows`` (one per span, all texts in order) cut back into one array per text."""
    bounds = np.cumsum([0, *(len(s) for s in spans)])
    return [rows[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def normalize(vectors: np.ndarray) -> Vectors:
    """Row-wise L2 normalisation; zero rows stay zero instead of becoming NaN."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Vectors = vectors / norms
    return out
