"""Shared data helpers for the index tests (imported by tests/test_index_*.py)."""

from __future__ import annotations

import numpy as np

ENGINES = ("flat", "faiss", "usearch")
QUANTS = ("f32", "f16", "int8", "binary")


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 40, noise: float = 0.5):
    """Seeded unit vectors around random centres: like real embeddings, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)]
    x = x + noise * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def queries_near(data: np.ndarray, nq: int, seed: int = 1, noise: float = 0.3):
    """Fresh unit queries near random stored vectors."""
    rng = np.random.default_rng(seed)
    q = data[rng.integers(0, len(data), nq)]
    q = q + noise * rng.standard_normal(q.shape).astype(np.float32) / np.sqrt(data.shape[1])
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def brute_force(data: np.ndarray, keys: np.ndarray, queries: np.ndarray, k: int, metric="cos"):
    """Exact top-k keys by similarity, independent of edgerag's code."""
    if metric == "l2":
        s = -((queries[:, None, :] - data[None, :, :]) ** 2).sum(-1)
    else:
        s = queries @ data.T
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return keys[idx], np.take_along_axis(s, idx, axis=1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(
        len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist()))
        for f, t in zip(found, truth, strict=True)
    )
    return hits / max(1, int((truth >= 0).sum()))
