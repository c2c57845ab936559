"""Vector codecs (f32, f16, int8, binary), independent of any engine.

Every codec turns float32 rows into compact codes and back, and scores queries against codes.
The flat engine stores these codes, so it doubles as a reference for what quantization does to
recall; the tests check each codec's error bound with hypothesis.

* ``f32``    — identity, 4 bytes/dim.
* ``f16``    — IEEE half, 2 bytes/dim; relative error ≤ 2**-11 in the normal range.
* ``int8``   — per-dimension affine scalar quantization trained on data (like faiss
  ``QT_8bit``), 1 byte/dim; absolute error ≤ step/2 inside the trained range.
* ``binary`` — sign bits packed 8 per byte, 1/32 of f32; scores are approximate
  (``1 - 2 * hamming / dim``, the cosine of two sign vectors) and need rescoring.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from edgerag.errors import ConfigError

logger = logging.getLogger(__name__)

Codes = npt.NDArray[np.generic]


class Codec:
    """Base codec: identity on float32."""

    name: ClassVar[str] = "f32"
    approximate_scores: ClassVar[bool] = False  # True when scores are not (near-)metric values

    def __init__(self, dim: int) -> None:
        self.dim = dim

    @property
    def trained(self) -> bool:
        return True

    def train(self, vectors: npt.NDArray[np.float32]) -> None:  # noqa: B027 - optional hook
        """Learn codec parameters from sample vectors (no-op unless the codec needs it)."""

    def bytes_per_vector(self) -> int:
        return 4 * self.dim

    def encode(self, vectors: npt.NDArray[np.float32]) -> Codes:
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def decode(self, codes: Codes) -> npt.NDArray[np.float32]:
        return np.asarray(codes, dtype=np.float32)

    def scores(
        self, queries: npt.NDArray[np.float32], codes: Codes, metric: str
    ) -> npt.NDArray[np.float32]:
        """Similarity (higher = better) of each query against each code row: (nq, n)."""
        return _similarity(queries, self.decode(codes), metric)

    def max_abs_error(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Upper bound of ``|decode(encode(x)) - x|`` per element for these vectors."""
        return np.zeros_like(vectors, dtype=np.float32)

    def state(self) -> dict[str, npt.NDArray[np.generic]]:
        """Arrays needed to rebuild a trained codec (saved with the engine)."""
        return {}

    def set_state(self, state: dict[str, npt.NDArray[np.generic]]) -> None:  # noqa: B027
        """Restore what :meth:`state` returned."""


class F16Codec(Codec):
    name = "f16"

    def bytes_per_vector(self) -> int:
        return 2 * self.dim

    def encode(self, vectors: npt.NDArray[np.float32]) -> Codes:
        return np.asarray(vectors, dtype=np.float32).astype(np.float16)

    def max_abs_error(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        # Half has an 11-bit significand: rounding error ≤ 2**-11 relative in the normal range,
        # and ≤ half the smallest subnormal step (2**-25) below it.
        x = np.abs(np.asarray(vectors, dtype=np.float32))
        return np.maximum(x * 2.0**-11, 2.0**-25).astype(np.float32)


class Int8Codec(Codec):
    """Per-dimension affine int8: ``x ≈ lo + step * (code + 128)``.

    Trained ranges are widened by ``margin`` so vectors added after training that fall slightly
    outside are still represented (beyond that they are clipped; rescoring repairs ranking).
    """

    name = "int8"
    margin = 0.1

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.lo: npt.NDArray[np.float32] | None = None
        self.step: npt.NDArray[np.float32] | None = None

    @property
    def trained(self) -> bool:
        return self.lo is not None

    def bytes_per_vector(self) -> int:
        return self.dim

    def train(self, vectors: npt.NDArray[np.float32]) -> None:
        x = np.asarray(vectors, dtype=np.float32)
        if x.size == 0:
            raise ValueError("cannot train int8 codec on no vectors")
        lo, hi = x.min(axis=0), x.max(axis=0)
        pad = (hi - lo) * self.margin + 1e-6
        lo, hi = lo - pad, hi + pad
        self.lo = lo.astype(np.float32)
        self.step = ((hi - lo) / 255.0).astype(np.float32)

    def _require_trained(self) -> None:
        if self.lo is None:
            raise RuntimeError("int8 codec used before train()")

    def encode(self, vectors: npt.NDArray[np.float32]) -> Codes:
        if not self.trained:
            self.train(vectors)
        assert self.lo is not None and self.step is not None
        q = np.rint((np.asarray(vectors, dtype=np.float32) - self.lo) / self.step)
        return (np.clip(q, 0, 255) - 128).astype(np.int8)

    def decode(self, codes: Codes) -> npt.NDArray[np.float32]:
        self._require_trained()
        assert self.lo is not None and self.step is not None
        return self.lo + self.step * (codes.astype(np.float32) + 128.0)

    def scores(
        self, queries: npt.NDArray[np.float32], codes: Codes, metric: str
    ) -> npt.NDArray[np.float32]:
        self._require_trained()
        assert self.lo is not None and self.step is not None
        if metric == "l2":
            return super().scores(queries, codes, metric)
        # q·x = q·lo + (q*step)·(code+128): one matmul on the codes, no decoded copy kept.
        q = np.asarray(queries, dtype=np.float32)
        bias = q @ (self.lo + 128.0 * self.step)
        return (q * self.step) @ codes.astype(np.float32).T + bias[:, None]

    def max_abs_error(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self._require_trained()
        assert self.lo is not None and self.step is not None
        x = np.asarray(vectors, dtype=np.float32)
        hi = self.lo + 255.0 * self.step
        # half a step inside the range (+ float rounding), the clipping distance outside it
        outside = np.maximum(self.lo - x, 0) + np.maximum(x - hi, 0)
        return (self.step * 0.5 * (1 + 1e-3) + outside + 1e-6).astype(np.float32)

    def state(self) -> dict[str, npt.NDArray[np.generic]]:
        if self.lo is None or self.step is None:
            return {}
        return {"lo": self.lo, "step": self.step}

    def set_state(self, state: dict[str, npt.NDArray[np.generic]]) -> None:
        if "lo" in state:
            self.lo = np.asarray(state["lo"], dtype=np.float32)
            self.step = np.asarray(state["step"], dtype=np.float32)


class BinaryCodec(Codec):
    """Sign bits packed big-endian 8 per byte (``np.packbits``); hamming-based scores."""

    name = "binary"
    approximate_scores = True

    def bytes_per_vector(self) -> int:
        return (self.dim + 7) // 8

    def encode(self, vectors: npt.NDArray[np.float32]) -> Codes:
        return np.packbits(np.asarray(vectors) > 0, axis=-1)

    def decode(self, codes: Codes) -> npt.NDArray[np.float32]:
        bits = np.unpackbits(codes, axis=-1, count=self.dim).astype(np.float32)
        # ±1/sqrt(dim): a unit vector with the stored signs
        return (bits * 2.0 - 1.0) / np.float32(np.sqrt(self.dim))

    def hamming(self, query_codes: Codes, codes: Codes) -> npt.NDArray[np.int32]:
        """Hamming distances (nq, n) between packed codes."""
        out = np.empty((len(query_codes), len(codes)), dtype=np.int32)
        for i, qc in enumerate(query_codes):  # nq is small; the inner op is vectorised
            out[i] = np.bitwise_count(np.bitwise_xor(codes, qc)).sum(axis=1, dtype=np.int32)
        return out

    def scores(
        self, queries: npt.NDArray[np.float32], codes: Codes, metric: str
    ) -> npt.NDArray[np.float32]:
        return hamming_to_score(self.hamming(self.encode(queries), codes), self.dim)

    def max_abs_error(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        # Only the sign survives: the error is bounded by |x| + 1/sqrt(dim).
        x = np.abs(np.asarray(vectors, dtype=np.float32))
        return (x + 1.0 / np.sqrt(self.dim) + 1e-6).astype(np.float32)


def hamming_to_score(hamming: npt.NDArray[np.generic], dim: int) -> npt.NDArray[np.float32]:
    """Similarity from a hamming distance: the cosine of the two ±1 sign vectors."""
    return (1.0 - 2.0 * np.asarray(hamming, dtype=np.float32) / dim).astype(np.float32)


CODECS: dict[str, type[Codec]] = {
    "f32": Codec,
    "f16": F16Codec,
    "int8": Int8Codec,
    "binary": BinaryCodec,
}


def get_codec(name: str, dim: int) -> Codec:
    """Codec by quantization name; unknown names list the valid ones."""
    try:
        return CODECS[name](dim)
    except KeyError:
        raise ConfigError(f"unknown quantization {name!r}; choose one of {list(CODECS)}") from None


def _similarity(
    queries: npt.NDArray[np.float32], vectors: npt.NDArray[np.float32], metric: str
) -> npt.NDArray[np.float32]:
    """(nq, n) similarities: dot product for cos/ip, negative squared distance for l2."""
    q = np.asarray(queries, dtype=np.float32)
    v = np.asarray(vectors, dtype=np.float32)
    dots = q @ v.T
    if metric != "l2":
        return dots
    qn = np.einsum("ij,ij->i", q, q)
    vn = np.einsum("ij,ij->i", v, v)
    return 2.0 * dots - qn[:, None] - vn[None, :]


def similarity(
    queries: npt.NDArray[np.float32], vectors: npt.NDArray[np.float32], metric: str
) -> npt.NDArray[np.float32]:
    """Exact similarity matrix (nq, n) of float32 vectors; higher is better for every metric."""
    return _similarity(queries, vectors, metric)


def rowwise_similarity(
    queries: npt.NDArray[np.float32], candidates: npt.NDArray[np.float32], metric: str
) -> npt.NDArray[np.float32]:
    """Similarity of query i with each of its own candidates: queries (nq, d), cands (nq, c, d)."""
    dots = np.einsum("qd,qcd->qc", queries, candidates)
    if metric != "l2":
        return dots
    qn = np.einsum("qd,qd->q", queries, queries)
    cn = np.einsum("qcd,qcd->qc", candidates, candidates)
    return 2.0 * dots - qn[:, None] - cn
