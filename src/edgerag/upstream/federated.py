"""Edge-first federated search: the edge answers, the upstream tier adds what the edge lacks.

Scopes:

* ``local`` — the edge only (what ``Engine.search`` does).
* ``upstream`` — the upstream tier only (cold tier, other sites).
* ``all`` — both, merged by the same reciprocal rank fusion the edge uses between its own
  retrievers, deduplicated by item key (the same stable key on every tier).
* ``auto`` — the edge first; upstream too only when *local confidence is low*: fewer than ``k``
  local hits, or the best local dense cosine below ``min_score``. Dense cosine is the one
  local score comparable across queries (BM25 and RRF scores are not); see
  docs/notes/upstream.md for what the threshold trades.

The upstream call has a deadline. When it misses it, fails, or cannot evaluate a filter, the
response carries the edge's hits with ``partial=True`` and the reason — never an error.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgerag.errors import ConfigError
from edgerag.retrieval.fusion import reciprocal_rank_fusion
from edgerag.retrieval.query import encode_query
from edgerag.types import Hit, Query, SearchResponse
from edgerag.upstream.base import Upstream, UpstreamHit, normalize_filters

if TYPE_CHECKING:
    from edgerag.engine import Engine

logger = logging.getLogger(__name__)
SCOPES = ("local", "upstream", "all", "auto")
# Upstream calls run here so a hung upstream costs a worker, never the caller's deadline.
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="upstream-q")


@dataclass
class FederatedResponse:
    hits: list[Hit]
    tiers: list[str]  # "edge" | "upstream", one per hit
    scope: str
    partial: bool = False
    reasons: list[str] = field(default_factory=list)
    asked_upstream: bool = False
    local: SearchResponse | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        base = self.local.to_dict() if self.local else {"mode": "", "plan": "", "query_texts": {}}
        base["hits"] = [
            {**h.to_dict(), "tier": t} for h, t in zip(self.hits, self.tiers, strict=True)
        ]
        base["timings_ms"] = {k: round(v, 3) for k, v in self.timings_ms.items()}
        base.update(
            scope=self.scope,
            partial=self.partial,
            partial_reasons=self.reasons,
            asked_upstream=self.asked_upstream,
        )
        return base


def low_confidence(response: SearchResponse, k: int, min_score: float) -> bool:
    """The edge's answer is weak: too few hits, or no dense match at least ``min_score``."""
    if len(response.hits) < k:
        return True
    dense = [h.scores["dense"] for h in response.hits if "dense" in h.scores]
    return not dense or max(dense) < min_score


def federated_search(
    engine: Engine,
    upstream: Upstream | None,
    query: str | Query,
    k: int = 10,
    filters: dict[str, Any] | None = None,
    mode: str = "hybrid",
    scope: str = "all",
    timeout_s: float = 2.0,
    min_score: float = 0.5,
    ocr: bool = True,
    **search_args: Any,
) -> FederatedResponse:
    """Search the edge and/or the upstream tier (see the module docstring)."""
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}; choose one of {list(SCOPES)}")
    t0 = time.perf_counter()
    local = None
    if scope != "upstream":
        local = engine.search(query, k=k, filters=filters, mode=mode, ocr=ocr, **search_args)
    out = FederatedResponse([], [], scope, local=local)
    if local is not None:
        out.timings_ms.update(local.timings_ms)
    ask = scope in ("upstream", "all") or (
        scope == "auto" and local is not None and low_confidence(local, k, min_score)
    )
    remote: dict[str, list[UpstreamHit]] = {}
    if ask:
        out.asked_upstream = True
        t1 = time.perf_counter()
        remote = _ask_upstream(engine, upstream, Query.of(query), k, filters, timeout_s, ocr, out)
        out.timings_ms["upstream"] = (time.perf_counter() - t1) * 1000
    _merge(engine, local, remote, k, out)
    out.timings_ms["federated_total"] = (time.perf_counter() - t0) * 1000
    return out


def _ask_upstream(
    engine: Engine,
    upstream: Upstream | None,
    query: Query,
    k: int,
    filters: dict[str, Any] | None,
    timeout_s: float,
    ocr: bool,
    out: FederatedResponse,
) -> dict[str, list[UpstreamHit]]:
    """One ranked list per space the upstream holds; on any failure, a reason and {}."""
    if upstream is None:
        return _partial(out, "no upstream configured for this collection")
    try:
        normalize_filters(filters)
    except ConfigError as exc:
        return _partial(out, f"upstream skipped: {exc}")
    vectors = encode_query(engine, query, ocr=ocr).fused()
    spaces = [s for s in vectors if s in engine.store.spaces()]

    def call() -> dict[str, list[UpstreamHit]]:
        return {s: upstream.search(s, vectors[s], k, filters) for s in spaces}

    future = _POOL.submit(call)
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        future.cancel()
        return _partial(out, f"upstream did not answer within {timeout_s:g} s")
    except Exception as exc:  # unreachable, refused, 5xx: the edge's answer still stands
        logger.info("upstream search failed: %s", type(exc).__name__)
        return _partial(out, f"upstream unreachable ({type(exc).__name__})")


def _partial(out: FederatedResponse, reason: str) -> dict[str, list[UpstreamHit]]:
    out.partial = True
    out.reasons.append(reason)
    return {}


def _merge(
    engine: Engine,
    local: SearchResponse | None,
    remote: dict[str, list[UpstreamHit]],
    k: int,
    out: FederatedResponse,
) -> None:
    """Dense scores of one encoder are comparable across tiers, so each space's edge and
    upstream candidates merge into one ranking by cosine (deduplicated by key); those rankings
    and the edge's BM25 ranking are then fused by RRF, as the edge fuses its own retrievers."""
    edge_hits = {h.key: h for h in (local.hits if local else [])}
    if not any(remote.values()):  # nothing to merge: keep the edge's own ranking and scores
        out.hits, out.tiers = list(edge_hits.values())[:k], ["edge"] * min(k, len(edge_hits))
        return
    payloads = {h.key: h for ranking in remote.values() for h in ranking}
    rankings: dict[str, dict[int, float]] = {}
    for space, ranking in remote.items():
        rankings[_label(space)] = {h.key: h.score for h in ranking}
    for hit in edge_hits.values():
        for name, score in hit.scores.items():
            if name == "bm25" or name in rankings or name in map(_label, engine.indexes):
                merged = rankings.setdefault(name, {})
                merged[hit.key] = max(score, merged.get(hit.key, score))
    ordered = {n: sorted(r.items(), key=lambda kv: -kv[1]) for n, r in rankings.items() if r}
    _impute_edge_only(ordered, set(payloads) - set(edge_hits))
    fused = reciprocal_rank_fusion(list(ordered.values()), limit=k, k=engine.config.rrf_k)
    for key, score in fused:
        if key in edge_hits:
            hit, tier = edge_hits[key], "edge"
        else:
            hit, tier = upstream_hit(payloads[key]), "upstream"
        # A copy: the edge's hits may live in its result cache.
        scores = {**hit.scores, "federated_rrf": round(score, 6)}
        out.hits.append(dataclasses.replace(hit, score=score, scores=scores))
        out.tiers.append(tier)


def _impute_edge_only(ordered: dict[str, list[tuple[int, float]]], cold: set[int]) -> None:
    """BM25 runs on the edge only, so an item only the upstream holds has no BM25 rank — a
    missing vote, not a bad one. Without a stand-in it loses every RRF tie against edge items
    (measured: cold hit@5 0.34 with ``all`` against 0.90 upstream-only). It gets its best dense
    rank in the edge-only rankings instead."""
    dense = [n for n in ordered if n != "bm25" and not n.startswith("bm25:")]
    best: dict[int, int] = {}
    for name in dense:
        for rank, (key, _) in enumerate(ordered[name]):
            if key in cold:
                best[key] = min(rank, best.get(key, rank))
    for name in [n for n in ordered if n not in dense]:
        ranking = list(ordered[name])
        for key, rank in sorted(best.items(), key=lambda kv: kv[1]):
            ranking.insert(min(rank, len(ranking)), (key, 0.0))
        ordered[name] = ranking


def _label(space: str) -> str:
    """Component score names as the edge's retriever names them ("dense" = the text space)."""
    return "dense" if space == "text" else space


def upstream_hit(hit: UpstreamHit) -> Hit:
    p = hit.payload
    return Hit(
        key=hit.key,
        id=str(p.get("item_id", hit.key)),
        doc_id=str(p.get("doc_id", "")),
        source=str(p.get("source", "")),
        modality=str(p.get("modality", "")),
        score=hit.score,
        text=str(p.get("text", "")),
        page=p.get("page"),
        char_start=p.get("char_start"),
        char_end=p.get("char_end"),
        t_start=p.get("t_start"),
        t_end=p.get("t_end"),
        metadata=dict(p.get("metadata") or {}),
        scores={"upstream": round(hit.score, 6)},
    )
