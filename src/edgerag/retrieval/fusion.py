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


# Query features the fitted rules may read: all come from the ranked lists themselves, so the
# choice costs nothing at query time and needs no second look at the store.
QUERY_FEATURES = ("entity", "bm25_gap", "dense_gap")


def query_features(rankings: Mapping[str, RankedList]) -> dict[str, float]:
    """How sure each list is of its top hit, and whether the query names a known entity.

    * ``entity``: 1 when the entity list is present (the query names a code or part number the
      collection knows), else 0;
    * ``bm25_gap``: ``(s1 - s2) / s1`` of the BM25 list — relative, because BM25 scores grow
      with the collection and the query's length; 1 for a lone hit, 0 for no list;
    * ``dense_gap``: ``s1 - s2`` of the dense list in cosine units; 1 for a lone hit, 0 for none.
    """
    return {
        "entity": 1.0 if rankings.get("entity") else 0.0,
        "bm25_gap": _gap(rankings.get("bm25", ()), relative=True),
        "dense_gap": _gap(rankings.get("dense", ()), relative=False),
    }


def _gap(ranking: RankedList, relative: bool) -> float:
    if len(ranking) < 2:
        return float(len(ranking))
    first, second = ranking[0][1], ranking[1][1]
    if not relative:
        return first - second
    return (first - second) / first if first > 0 else 0.0


@dataclass(frozen=True)
class Rule:
    """Use ``weights`` for a query whose ``feature`` is at least ``at_least``."""

    feature: str
    at_least: float
    weights: dict[str, float]

    def matches(self, features: Mapping[str, float]) -> bool:
        return features.get(self.feature, 0.0) >= self.at_least


@dataclass(frozen=True)
class FusionWeights:
    """Per-signal weights of :func:`weighted_fusion`, fitted by ``scripts/fit_fusion.py``.

    A query's weights are chosen by a small decision on features of its own ranked lists
    (:func:`query_features`): the first rule that matches gives them, else ``weights``. Fitted:
    questions naming an entity lean on the exact signals (BM25, the entity index); questions
    whose BM25 top hit stands clear of the rest (a rare term such as "elastomer" or "NDE")
    give BM25 more say; prose questions are answered by meaning (dense). A ranking with no
    weight of its own gets ``default``.
    """

    weights: dict[str, float]
    default: float = 0.0
    fitted_on: str = ""
    rules: tuple[Rule, ...] = ()

    def table(self, features: Mapping[str, float]) -> dict[str, float]:
        """The weight set for a query with these features."""
        return next((r.weights for r in self.rules if r.matches(features)), self.weights)

    def of(self, name: str, table: Mapping[str, float] | None = None) -> float:
        table = self.weights if table is None else table
        # late fusion names extra lists "bm25:1", "text:audio", ...: weigh them like their kind
        base = name.split(":", 1)[0]
        return table.get(name, table.get(base, UNFITTED.get(base, self.default)))

    def to_json(self) -> str:
        out: dict[str, object] = {
            "weights": self.weights,
            "default": self.default,
            "fitted_on": self.fitted_on,
            "rules": [
                {"when": r.feature, "at_least": r.at_least, "weights": r.weights}
                for r in self.rules
            ],
        }
        return json.dumps(out, indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: Path | str = WEIGHTS_FILE) -> FusionWeights:
        try:
            raw = json.loads(Path(path).read_text())
            weights = _table(raw["weights"])
            rules = [
                Rule(str(r["when"]), float(r["at_least"]), _table(r["weights"]))
                for r in raw.get("rules", [])
            ]
            if raw.get("with_entity") is not None:  # the format before rules
                rules.insert(0, Rule("entity", 1.0, _table(raw["with_entity"])))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: not a fusion weights file: {exc}") from exc
        for table in (weights, *(r.weights for r in rules)):
            if any(w < 0 for w in table.values()) or not any(table.values()):
                raise ValueError(f"{path}: fusion weights must be non-negative and not all zero")
        unknown = sorted({r.feature for r in rules} - set(QUERY_FEATURES))
        if unknown:
            raise ValueError(f"{path}: unknown rule feature(s) {unknown}; known: {QUERY_FEATURES}")
        return cls(
            weights, float(raw.get("default", 0.0)), str(raw.get("fitted_on", "")), tuple(rules)
        )


def _table(raw: Mapping[str, object]) -> dict[str, float]:
    return {str(k): float(v) for k, v in raw.items()}  # type: ignore[arg-type]


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
    weight set is chosen per query from its lists' features (see :class:`FusionWeights`).

    A candidate absent from a list scores 0 for it (below every candidate the list returned).
    Ties are broken by key for stability.
    """
    table = weights.table(query_features(rankings))
    total = sum(weights.of(name, table) for name in rankings) or 1.0
    scores: dict[int, float] = {}
    for name, ranking in rankings.items():
        w = weights.of(name, table)
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
