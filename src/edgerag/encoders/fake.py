"""A deterministic hashing encoder: fast unit tests and demos without model weights.

Bag of hashed word unigrams and bigrams, signed feature hashing into ``dim`` buckets. Texts that
share words get similar vectors, which is enough to test the plumbing; it is never the thing a
quality test claims to verify.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from edgerag.encoders.base import TextEncoder, normalize
from edgerag.types import Vectors

_WORD = re.compile(r"\w+", re.UNICODE)


class HashEncoder(TextEncoder):
    id = "hash"
    version = "1"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def _bucket(self, token: str) -> tuple[int, float]:
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dim, 1.0 if (value >> 63) & 1 else -1.0

    def encode(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for token in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
                bucket, sign = self._bucket(token)
                out[row, bucket] += sign
        return normalize(out)
