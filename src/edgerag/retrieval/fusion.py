"""Rank fusion as small pure functions: RRF, and the fitted convex score fusion (default)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

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


# ----------------------------------------------------------------------------- fitted fusion
FUSION_METHODS = ("weighted", "rrf")
WEIGHTS_FILE = Path(__file__).with_name("fusion_weights.json")
# Lists the dev Q/A sets cannot fit (they hold no images), with a set weight unless a fitted file
# names them: the joint head's `imagetext` list (images only, and a text-only query's list is
# gated by IMAGE_MIN_SIM) is what ranks an image by what it shows (docs/notes/joint.md).
UNFITTED: dict[str, float] = {"imagetext": 1.0}


@dataclass(frozen=True)
class FusionWeights:
    """Per-signal weights of :func:`weighted_fusion`, fitted by ``scripts/fit_fusion.py``.

    Two weight sets, chosen per query by one feature: whether the query names an entity the
    collection knows (the ``entity`` list is present). Questions that name a code or part
    number are answered by exact matches (BM25, the entity index); prose questions by meaning
    (dense). A ranking with no weight of its own gets ``default``.
    """

    weights: dict[str, float]
    default: float = 0.0
    fitted_on: str = ""
    with_entity: dict[str, float] | None = None

    def of(self, name: str, entity_query: bool = False) -> float:
        table = self.with_entity if entity_query and self.with_entity else self.weights
        # late fusion names extra lists "bm25:1", "text:audio", ...: weigh them like their kind
        base = name.split(":", 1)[0]
        return table.get(name, table.get(base, UNFITTED.get(base, self.default)))

    def to_json(self) -> str:
        out: dict[str, object] = {
            "weights": self.weights,
            "default": self.default,
            "fitted_on": self.fitted_on,
        }
        if self.with_entity:
            out["with_entity"] = self.with_entity
        return json.dumps(out, indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: Path | str = WEIGHTS_FILE) -> FusionWeights:
        try:
            raw = json.loads(Path(path).read_text())
            weights = {str(k): float(v) for k, v in raw["weights"].items()}
            with_entity = raw.get("with_entity")
            if with_entity is not None:
                with_entity = {str(k): float(v) for k, v in with_entity.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: not a fusion weights file: {exc}") from exc
        for table in (weights, with_entity or {"_": 1.0}):
            if any(w < 0 for w in table.values()) or not any(table.values()):
                raise ValueError(f"{path}: fusion weights must be non-negative and not all zero")
        return cls(
            weights, float(raw.get("default", 0.0)), str(raw.get("fitted_on", "")), with_entity
        )


@functools.cache
def default_weights() -> FusionWeights:
    """The weights shipped in the package (fitted on the dev splits)."""
    return FusionWeights.load(WEIGHTS_FILE)


def normalise(ranking: RankedList) -> dict[int, float]:
    """Scores of one list mapped to [0, 1] by min-max over the list (best = 1).

    Raw scores are not comparable across retrievers (cosine ~0.2–0.8, BM25 unbounded); within a
    list they are, and min-max keeps how far apart the candidates are, which ranks throw away.
    A one-element or flat list maps to 1.
    """
    if not ranking:
        return {}
    values = [s for _, s in ranking]
    lo, hi = min(values), max(values)
    span = hi - lo
    return {key: (s - lo) / span if span > 0 else 1.0 for key, s in ranking}


def weighted_fusion(
    rankings: Mapping[str, RankedList],
    weights: FusionWeights,
    limit: int = 10,
) -> list[tuple[int, float]]:
    """Convex score fusion: ``sum_i w_i * minmax_i(score)``, divided by ``sum_i w_i``; the
    weight set depends on whether the query names a known entity (see :class:`FusionWeights`).

    A candidate absent from a list scores 0 for it (below every candidate the list returned).
    Ties are broken by key for stability.
    """
    entity_query = bool(rankings.get("entity"))
    total = sum(weights.of(name, entity_query) for name in rankings) or 1.0
    scores: dict[int, float] = {}
    for name, ranking in rankings.items():
        w = weights.of(name, entity_query)
        if w == 0:
            continue
        for key, s in normalise(ranking).items():
            scores[key] = scores.get(key, 0.0) + w * s / total
    for ranking in rankings.values():  # keys only zero-weight lists found still take part
        for key, _ in ranking:
            scores.setdefault(key, 0.0)
    fused = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return fused[:limit]


def fuse(
    rankings: Mapping[str, RankedList], n: int, method: str = "weighted", rrf_k: int = 60
) -> tuple[list[tuple[int, float]], str]:
    """The fusion step of a query, shared by one node's retriever and the fleet's router (so a
    fleet ranks like one node holding all the data): the first ``n`` fused candidates and the
    name of the fused score ("fused", "rrf", or "" when there was one list and nothing to fuse).
    """
    if len(rankings) <= 1:
        return list(next(iter(rankings.values()), []))[:n], ""
    if method == "rrf":
        return reciprocal_rank_fusion(list(rankings.values()), limit=n, k=rrf_k), "rrf"
    return weighted_fusion(rankings, default_weights(), limit=n), "fused"
