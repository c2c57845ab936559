"""Rank fusion as small pure functions."""

from __future__ import annotations

from collections.abc import Sequence

RankedList = Sequence[tuple[int, float]]  # (key, score), best first


def reciprocal_rank_fusion(
    rankings: Sequence[RankedList],
    limit: int = 10,
    k: int = 60,
    weights: Sequence[float] | None = None,
) -> list[tuple[int, float]]:
    """Fuse ranked lists by RRF: ``sum_i w_i / (k + rank_i)``; ties broken by key for stability.

    Args:
        rankings: one ranked list per retriever, best first.
        limit: how many fused results to return.
        k: the RRF constant (60 in the original paper); larger flattens the rank curve.
        weights: optional per-list weight; must match ``len(rankings)``.
    """
    if weights is not None and len(weights) != len(rankings):
        raise ValueError("weights must have one entry per ranking")
    if k < 0:
        raise ValueError("k must be >= 0")
    scores: dict[int, float] = {}
    for i, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[i]
        for rank, (key, _) in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    fused = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return fused[:limit]
