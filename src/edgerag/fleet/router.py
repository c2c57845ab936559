"""Scatter-gather search over the fleet (router) and the replica side that answers (responder).

Each healthy replica of shard ``s`` joins the NATS queue group ``replicas`` on
``edgerag.<c>.search.<s>`` (a quarantined one leaves it) and also listens on
``edgerag.<c>.search.<s>.<node>``. Each node also listens on ``edgerag.<c>.nodesearch.<node>``
for one request naming several of its shards. The router's usual path:

* it picks, from its KV view, as few healthy replicas as cover every shard (ties broken at
  random, so replicas share the load) and sends **one request per node**, naming the shards it
  wants from it. Every extra node is one more request, search and reply on the box's cores: 4
  shards × 2 replicas on 4 nodes are answered by 2 of them. A node asked for every shard it
  holds runs one plain top-k search (its data is exactly those shards); asked for some of them,
  it over-fetches once and keeps theirs;
* a shard with no healthy replica in the view goes to its queue group (the router's view may be
  the stale part; replicas refuse when they must not answer). Routing by the view, not the
  queue group, also keeps reads off a frozen process, which keeps its queue subscription until
  the server notices it is dead;
* a shard the chosen node refused or did not answer in time gets **one retry**, hedged to every
  healthy replica of it at once (first answer wins).

Answers are merged by score. A shard that does not answer before the deadline is listed in
``missing_shards`` and the response is ``partial`` — never silently incomplete. Dense scores
are exact cosine similarities, so a fleet's dense ranking equals a single node's on the same
data; BM25 statistics (IDF) are per replica, so hybrid/BM25 fleet rankings can differ slightly
from one node's, as in any sharded BM25 engine.

A replica holding several shards may still get per-shard requests (retries, queue groups, an
older router) with the same bytes: the first starts one search, over-fetched and split by
shard, and the others take their part of it instead of searching again
(``Responder._shared_search``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgerag.config import MODES
from edgerag.errors import ConfigError
from edgerag.fleet.encoders import engine_encoders, text_encoder_id
from edgerag.fleet.nats import SEARCH_QUEUE, Names
from edgerag.fleet.sharding import shard_for
from edgerag.fleet.shardmap import SERVING
from edgerag.ingest.documents import TEXT_SPACE
from edgerag.retrieval.fusion import fuse
from edgerag.types import Query

if TYPE_CHECKING:
    from nats.aio.client import Client

    from edgerag.encoders.base import TextEncoder
    from edgerag.engine import Engine
    from edgerag.fleet.replication import Replicator
    from edgerag.fleet.shardmap import FleetView
    from edgerag.types import Hit

logger = logging.getLogger(__name__)


@dataclass
class FleetSearchResponse:
    """Merged fleet answer; ``partial`` is True when ``missing_shards`` is not empty."""

    hits: list[dict[str, Any]]
    mode: str
    partial: bool = False
    missing_shards: list[int] = field(default_factory=list)
    shards: dict[int, dict[str, Any]] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "mode": self.mode,
            "partial": self.partial,
            "missing_shards": self.missing_shards,
            "shards": {str(s): v for s, v in self.shards.items()},
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


def _by_score(hits: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    seen: dict[int, dict[str, Any]] = {}
    for hit in hits:  # a document can only live in one shard; dedupe defensively anyway
        if hit["key"] not in seen or hit["score"] > seen[hit["key"]]["score"]:
            seen[hit["key"]] = hit
    return sorted(seen.values(), key=lambda h: (-h["score"], h["key"]))[:limit]


def merge(parts: list[dict[str, Any]], k: int, mode: str) -> list[dict[str, Any]]:
    """Merge per-shard answers: by score, or (hybrid) each signal's lists merged across shards
    and fused by the same :func:`fuse` one node uses, so a fleet ranks like one node holding
    all the data (up to BM25 statistics, which are per shard)."""
    if mode != "hybrid":
        return _by_score([h for p in parts for h in p["hits"]], k)
    lists: dict[str, list[tuple[int, float]]] = {}
    rows: dict[int, dict[str, Any]] = {}
    n = k
    for part in map(_as_candidates, parts):
        n = max(n, int(part.get("n", k)))
        for name, ranking in part["rankings"].items():
            lists.setdefault(name, []).extend((int(key), float(s)) for key, s in ranking)
        rows.update((int(key), hit) for key, hit in part["rows"].items())
    merged = {name: sorted(r, key=lambda ks: (-ks[1], ks[0]))[:n] for name, r in lists.items()}
    fused, label = fuse(merged, n)
    components = {name: dict(r) for name, r in merged.items()}
    out = []
    for key, score in fused[:k]:
        hit = dict(rows[key])
        scores = {name: round(c[key], 6) for name, c in components.items() if key in c}
        if label:
            scores[label] = round(score, 6)
        hit["scores"], hit["score"] = scores, round(score, 6)
        out.append(hit)
    return out


def _as_candidates(part: dict[str, Any]) -> dict[str, Any]:
    """A replica's hybrid answer as ranked lists + rows; replicas from before the shared
    fusion answer with fused-ready hit lists per signal ("dense", "bm25")."""
    if "rankings" in part:
        return part
    hits = {name: part.get(name, []) for name in ("dense", "bm25")}
    return {
        "rankings": {name: [(h["key"], h["score"]) for h in hs] for name, hs in hits.items()},
        "rows": {h["key"]: h for hs in hits.values() for h in hs},
        "n": max(map(len, hits.values())),
    }


# The shards one answer covers, the answer (None: none came), and how it was routed.
_Answered = tuple[list[int], dict[str, Any] | None, dict[str, Any]]


def _first(deadline: float) -> float:
    """The first try's share of the budget, so that one retry still fits."""
    return max((deadline - time.time()) * 0.45, 0.01)


class Router:
    """Client side of fleet search; needs a connected client and a started :class:`FleetView`."""

    def __init__(
        self,
        nc: Client,
        view: FleetView,
        deadline_s: float = 2.0,
        encoder: TextEncoder | None = None,
    ) -> None:
        """``encoder``: the fleet's text encoder, to encode each question once here instead
        of once on every node asked (each node's encode is most of its search with a real
        model). Used only while it is the encoder the fleet config records for the text
        space; nodes check the id the request carries and encode themselves otherwise."""
        self.nc = nc
        self.view = view
        self.deadline_s = deadline_s
        self.encoder = encoder
        self._warned: str | None = None

    @property
    def names(self) -> Names:
        assert self.view.config is not None, "fleet config not loaded"
        return self.view.config.names

    async def search(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        filters: dict[str, Any] | None = None,
        min_seq: int | None = None,
        deadline_s: float | None = None,
    ) -> FleetSearchResponse:
        """Search every shard; ``min_seq`` = read-your-writes (replicas wait until the op with
        that log sequence is applied, within the deadline)."""
        if mode not in MODES:
            raise ConfigError(f"unknown search mode {mode!r}; choose one of {list(MODES)}")
        if not 1 <= k <= 1000 or not query.strip():
            raise ConfigError("need a non-empty query and 1 <= k <= 1000")
        if self.view.config is None:
            raise ConfigError("no fleet config in KV yet: is any node running?")
        t0 = time.perf_counter()
        deadline = time.time() + (deadline_s or self.deadline_s)
        request = {
            "q": query,
            "k": k,
            "mode": mode,
            "filters": filters,
            "min_seq": min_seq,
            "deadline": deadline,
        }
        request.update(self._query_vector(query))
        payload = json.dumps(request).encode()
        groups, rest = self._plan(range(self.view.config.shards))
        asks = [self._ask_node(node, shards, request, payload, deadline) for node, shards in groups]
        asks += [self._ask_shard(s, payload, deadline) for s in rest]
        parts, info = [], {}
        for answered in await asyncio.gather(*asks):
            for shards, answer, meta in answered:
                info.update((s, dict(meta)) for s in shards)
                if answer is not None:
                    parts.append(answer)
        missing = sorted(s for s, meta in info.items() if "node" not in meta)
        hits = merge(parts, k, mode)
        ms = (time.perf_counter() - t0) * 1000
        info = dict(sorted(info.items()))
        return FleetSearchResponse(hits, mode, bool(missing), missing, info, {"total": ms})

    def _query_vector(self, query: str) -> dict[str, str]:
        """The question's text vector and its encoder's id, for the request (empty without an
        encoder, or with one the fleet does not use)."""
        if self.encoder is None or self.view.config is None:
            return {}
        mine = text_encoder_id(self.encoder)
        fleet = self.view.config.encoders.get(TEXT_SPACE)
        if mine != fleet:
            if self._warned != fleet:
                self._warned = fleet
                logger.warning("router encoder %s, fleet %s: the nodes encode", mine, fleet)
            return {}
        vector = np.asarray(self.encoder.encode([query])[0], dtype="<f4")
        return {"vector": base64.b64encode(vector.tobytes()).decode(), "encoder": mine}

    def _plan(self, shards: Iterable[int]) -> tuple[list[tuple[str, list[int]]], list[int]]:
        """Which node answers which shards: greedily, the healthy replica covering the most
        shards still uncovered (ties at random); shards with no healthy replica in the view
        are left for their queue groups."""
        healthy = {s: set(self.view.healthy_replicas(s)) for s in shards}
        rest = sorted(s for s, nodes in healthy.items() if not nodes)
        left = {s for s, nodes in healthy.items() if nodes}
        groups: list[tuple[str, list[int]]] = []
        while left:
            counts = Counter(node for s in left for node in healthy[s])
            most = max(counts.values())
            node = random.choice(sorted(n for n, c in counts.items() if c == most))
            mine = sorted(s for s in left if node in healthy[s])
            groups.append((node, mine))
            left -= set(mine)
        return groups, rest

    def _retry_targets(self, shard: int) -> list[str]:
        healthy = self.view.healthy_replicas(shard)
        if not healthy:  # same reasoning as above: let the replicas decide
            healthy = [
                n
                for n in self.view.shardmap.get(shard, [])
                if self.view.heartbeats.get(n, {})
                .get("shards", {})
                .get(str(shard), {})
                .get("state")
                == SERVING
            ]
        return [self.names.search(shard, n) for n in healthy]

    async def _ask_node(
        self,
        node: str,
        shards: list[int],
        request: dict[str, Any],
        payload: bytes,
        deadline: float,
    ) -> list[_Answered]:
        """One request to ``node`` for ``shards``; each shard it refused or left unanswered
        is retried on its own (``payload`` is the per-shard request)."""
        asked = json.dumps({**request, "shards": shards}).encode()
        answer, error = await self._request(self.names.node_search(node), asked, _first(deadline))
        covered = [int(s) for s in (answer or {}).get("answered", []) if int(s) in shards]
        errors = (answer or {}).get("errors", {})
        out: list[_Answered] = []
        if answer is not None and covered:
            out.append((covered, answer, {"attempts": 1, "node": node}))
        retried = [
            self._retry(s, payload, deadline, {"attempts": 1, "error": errors.get(str(s), error)})
            for s in shards
            if s not in covered
        ]
        return out + list(await asyncio.gather(*retried))

    async def _ask_shard(self, shard: int, payload: bytes, deadline: float) -> list[_Answered]:
        """A shard with no healthy replica in the view: ask its queue group, then retry."""
        meta: dict[str, Any] = {"attempts": 0}
        if self.view.shardmap.get(shard):
            # With no fresh heartbeat at all the router's own view may be the stale part (its
            # loop was busy): ask the queue group anyway; replicas refuse when they must not
            # answer, so this never routes a read to a quarantined replica.
            meta["attempts"] = 1
            answer, error = await self._request(self.names.search(shard), payload, _first(deadline))
            if answer is not None:
                meta["node"] = answer.get("node")
                return [([shard], answer, meta)]
            meta["error"] = error
        return [await self._retry(shard, payload, deadline, meta)]

    async def _retry(
        self, shard: int, payload: bytes, deadline: float, meta: dict[str, Any]
    ) -> _Answered:
        retry = self._retry_targets(shard)
        if not retry:
            meta["error"] = meta.get("error") or "no healthy replica"
            return [shard], None, meta
        meta["attempts"] += 1
        answer, error = await self._hedged(retry, payload, max(deadline - time.time(), 0.01))
        if answer is None:
            meta["error"] = error
            return [shard], None, meta
        meta["node"] = answer.get("node")
        return [shard], answer, meta

    async def _request(
        self, subject: str, payload: bytes, timeout: float
    ) -> tuple[dict[str, Any] | None, str]:
        try:
            reply = await self.nc.request(subject, payload, timeout=timeout)
        except Exception as exc:  # timeout / no responders / connection trouble: retryable
            return None, type(exc).__name__
        answer = json.loads(reply.data)
        if "error" in answer:
            return None, f"{answer.get('node')}: {answer['error']}"
        return answer, ""

    async def _hedged(
        self, subjects: list[str], payload: bytes, timeout: float
    ) -> tuple[dict[str, Any] | None, str]:
        tasks = [asyncio.create_task(self._request(s, payload, timeout)) for s in subjects]
        error = "timeout"
        try:
            for next_done in asyncio.as_completed(tasks):
                answer, err = await next_done
                if answer is not None:
                    return answer, ""
                error = err
        finally:
            for task in tasks:
                task.cancel()
        return None, error


# Ranked lists by name + a hit for every key in them.
_Ranked = tuple[dict[str, list[tuple[int, float]]], dict[int, "Hit"]]
# A document's shard never changes: hash each id once per process, not once per search.
_shard_of = functools.lru_cache(maxsize=1 << 16)(shard_for)


@dataclass
class _Shared:
    """One search answering several shards' requests (see ``Responder._shared_search``)."""

    future: asyncio.Future[dict[int, dict[str, Any]]]
    waiting: set[int]
    started: float = field(default_factory=time.monotonic)


class Responder:
    """Replica side: answers a shard's search requests from the local engine.

    Args:
        nc: NATS client.
        engine: the node's engine.
        names: subjects.
        node_id: this node.
        shards: the collection's shard count.
        refuse: ``refuse(shard)`` → reason string when this replica must not answer now.
        held: shards this node holds (to keep other shards' documents out of an answer).
        replicator: for read-your-writes waits.
    """

    def __init__(
        self,
        nc: Client,
        engine: Engine,
        names: Names,
        node_id: str,
        shards: int,
        refuse: Callable[[int], str | None],
        held: Callable[[], list[int]],
        replicator: Replicator,
    ) -> None:
        self.nc = nc
        self.engine = engine
        self.names = names
        self.node_id = node_id
        self.shards = shards
        self.refuse = refuse
        self.held = held
        self.replicator = replicator
        self.served: dict[int, int] = {}
        self._queue_subs: dict[int, Any] = {}
        self._direct_subs: dict[int, Any] = {}
        self._shared: OrderedDict[tuple[bytes, int], _Shared] = OrderedDict()
        self._node_sub: Any = None

    def in_queue(self, shard: int) -> bool:
        return shard in self._queue_subs

    async def listen(self, shard: int) -> None:
        """Direct subject: always on (answers or refuses fast, so a retry never waits)."""
        if shard not in self._direct_subs:
            self._direct_subs[shard] = await self.nc.subscribe(
                self.names.search(shard, self.node_id), cb=self._callback(shard)
            )

    async def listen_node(self) -> None:
        """This node's subject for requests naming several shards (the router's usual path)."""
        if self._node_sub is None:
            self._node_sub = await self.nc.subscribe(
                self.names.node_search(self.node_id), cb=self._callback(None)
            )

    async def join(self, shard: int) -> None:
        if shard not in self._queue_subs:
            self._queue_subs[shard] = await self.nc.subscribe(
                self.names.search(shard), queue=SEARCH_QUEUE, cb=self._callback(shard)
            )
            logger.info("joined the read queue group of shard %d", shard)

    async def leave(self, shard: int) -> None:
        sub = self._queue_subs.pop(shard, None)
        if sub is not None:
            await sub.unsubscribe()
            logger.info("left the read queue group of shard %d", shard)

    async def drop(self, shard: int) -> None:
        await self.leave(shard)
        sub = self._direct_subs.pop(shard, None)
        if sub is not None:
            await sub.unsubscribe()

    def _callback(self, shard: int | None) -> Callable[[Any], Any]:
        async def handle(msg: Any) -> None:
            if shard is None:
                answer = await self._answer_shards(msg.data)
            else:
                answer = await self._answer(shard, msg.data)
            answer["node"] = self.node_id
            await msg.respond(json.dumps(answer).encode())

        return handle

    async def _answer_shards(self, data: bytes) -> dict[str, Any]:
        """One answer for the shards a request names, with ``answered`` (the shards it covers)
        and ``errors`` (why each other one is not in it)."""
        try:
            req = json.loads(data)
            wanted = sorted({int(s) for s in req["shards"]})
            errors = {s: f"unavailable: {why}" for s in wanted if (why := self.refuse(s))}
            for s in wanted:
                if s not in errors and (behind := await self._behind(s, req)):
                    errors[s] = behind
            serving = [s for s in wanted if s not in errors]
            if not serving:
                return {"error": "; ".join(dict.fromkeys(errors.values())) or "no shard asked"}
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(None, self._search_union, serving, req)
        except Exception as exc:  # a bad request must not kill the subscription
            logger.warning("search on shards %s failed: %s", data[:200], exc)
            return {"error": f"{type(exc).__name__}: {exc}"}
        for s in serving:
            self.served[s] = self.served.get(s, 0) + 1
        answer["answered"] = serving
        answer["errors"] = {str(s): why for s, why in errors.items()}
        return answer

    async def _answer(self, shard: int, data: bytes) -> dict[str, Any]:
        reason = self.refuse(shard)
        if reason:
            return {"error": f"unavailable: {reason}"}
        try:
            req = json.loads(data)
            behind = await self._behind(shard, req)
            if behind:
                return {"error": behind}
            answer = await self._shared_search(shard, data, req)
        except Exception as exc:  # a bad request must not kill the subscription
            logger.warning("search on shard %d failed: %s", shard, exc)
            return {"error": f"{type(exc).__name__}: {exc}"}
        self.served[shard] = self.served.get(shard, 0) + 1
        return answer

    async def _behind(self, shard: int, req: dict[str, Any]) -> str | None:
        """Why ``shard`` cannot answer a read-your-writes request yet (None: it can)."""
        if req.get("min_seq") and not await self._wait_seq(shard, req):
            return f"behind: op {req['min_seq']} not applied before the deadline"
        return None

    async def _shared_search(self, shard: int, data: bytes, req: dict[str, Any]) -> dict[str, Any]:
        """``shard``'s answer. The router sends the same bytes to every shard, so on a node
        holding several, the first request's search answers all of them (over-fetched once,
        split by shard) and the others' requests take their part instead of searching again.
        A read-your-writes request (``min_seq``) searches for its own shard only: another
        shard's wait for that op may not be over."""
        loop = asyncio.get_running_loop()
        held = self.held()
        if len(held) < 2 or req.get("min_seq"):
            return (await loop.run_in_executor(None, self._search, [shard], req))[shard]
        # Keyed by the store's LSN too: the same question asked again after a write (while a
        # sibling request that went to another replica left this entry waiting) searches anew.
        key = (data, self.engine.store.last_lsn())
        shared = self._shared.get(key)
        if shared is None or shard not in shared.waiting:
            serving = [s for s in held if s == shard or not self.refuse(s)]
            future = loop.run_in_executor(None, self._search, serving, req)
            shared = _Shared(future, set(serving))
            self._remember(key, shared)
        shared.waiting.discard(shard)
        if not shared.waiting:
            self._shared.pop(key, None)
        return (await asyncio.shield(shared.future))[shard]

    def _remember(self, key: tuple[bytes, int], shared: _Shared) -> None:
        """Keep a shared search until its shards have asked; drop stale ones (a sibling
        request that went to another replica never comes)."""
        while self._shared and (
            len(self._shared) >= 64
            or shared.started - next(iter(self._shared.values())).started > 5.0
        ):
            self._shared.popitem(last=False)
        self._shared[key] = shared

    async def _wait_seq(self, shard: int, req: dict[str, Any]) -> bool:
        while True:
            if await self.replicator.caught_up(shard, int(req["min_seq"])):
                return True
            # Give up a little before the router does, so that it hears why.
            if time.time() > float(req.get("deadline", 0)) - 0.1:
                return False
            await asyncio.sleep(0.02)

    def _search(self, shards: list[int], req: dict[str, Any]) -> dict[int, dict[str, Any]]:
        """The answer of each of ``shards`` to ``req``: ranked hits (dense, BM25), or a hybrid
        search's unfused ranked lists + rows, which the router fuses across shards."""
        query, n, mode, filters = self._prepare(req)
        found = self._within(shards, query, mode, n, filters)
        return {s: _reply(ranked, mode, n) for s, ranked in found.items()}

    def _search_union(self, shards: list[int], req: dict[str, Any]) -> dict[str, Any]:
        """One answer covering ``shards``: a plain search when they are every shard this node
        holds (its data is exactly theirs), else their parts of one over-fetched search."""
        query, n, mode, filters = self._prepare(req)
        if shards == sorted(self.held()):
            ranked = self._fetch(query, mode, n, filters)
        else:
            ranked = _union(self._within(shards, query, mode, n, filters).values())
        return _reply(ranked, mode, n)

    def _prepare(self, req: dict[str, Any]) -> tuple[Query, int, str, dict[str, Any] | None]:
        """The request's query, candidate count, mode and filters, after following the op
        log. The router's text vector is used when its encoder is this node's."""
        k, mode = int(req["k"]), req["mode"]
        self.engine.follow()  # see every op this process's engine has stored
        n = max(k, self.engine.config.candidates) if mode == "hybrid" else k
        vector = None
        if req.get("vector") and req.get("encoder") == self._text_encoder:
            vector = np.frombuffer(base64.b64decode(req["vector"]), dtype="<f4")
        return Query(text=req["q"], text_vector=vector), n, mode, req.get("filters") or None

    @functools.cached_property
    def _text_encoder(self) -> str | None:
        return engine_encoders(self.engine.indexes).get(TEXT_SPACE)

    def _within(
        self, shards: list[int], query: Query, mode: str, n: int, filters: dict[str, Any] | None
    ) -> dict[int, _Ranked]:
        """Each ranked list's top ``n`` within each of ``shards``. A node holding only that
        shard searches as is; one holding several over-fetches once and keeps each shard's
        keys. (Over-fetching is exact: if n of a shard's keys are among the node's top n', no
        other key of the shard can outrank them.) A shard left short while more may exist is
        re-asked with an exact doc filter."""
        held = self.held()
        if len(shards) == 1 and held == shards:
            return {shards[0]: self._fetch(query, mode, n, filters)}
        wide = min(n * max(len(held), 1) * 2, 1000)
        rankings, rows = self._fetch(query, mode, wide, filters)
        shard_of = {key: _shard_of(hit.doc_id, self.shards) for key, hit in rows.items()}
        found: dict[int, _Ranked] = {}
        for shard in shards:
            kept = {
                name: [(key, s) for key, s in r if shard_of.get(key) == shard][:n]
                for name, r in rankings.items()
            }
            if all(len(kept[name]) >= n or len(r) < wide for name, r in rankings.items()):
                found[shard] = kept, {key: rows[key] for r in kept.values() for key, _ in r}
                continue
            scoped = self._scoped_to(shard, filters)
            found[shard] = ({}, {}) if scoped is None else self._fetch(query, mode, n, scoped)
        return found

    def _fetch(self, query: Query, mode: str, n: int, filters: dict[str, Any] | None) -> _Ranked:
        """Ranked lists by name and a hit for every key in them: a hybrid search's unfused
        signals, or a dense/BM25 search's one ranked list (``"hits"``)."""
        if mode == "hybrid":
            return self.engine.retriever.candidates(query, n, filters)
        hits = self.engine.search(query, n, filters, mode).hits
        return {"hits": [(h.key, h.score) for h in hits]}, {h.key: h for h in hits}

    def _scoped_to(self, shard: int, filters: dict[str, Any] | None) -> dict[str, Any] | None:
        """``filters`` narrowed to the shard's documents; None when that leaves none."""
        docs = self._shard_doc_ids(shard)
        scoped = dict(filters or {})
        if "doc_id" in scoped:
            given = scoped["doc_id"]
            wanted = set(given if isinstance(given, list) else [given])
            docs = [d for d in docs if d in wanted]
        if not docs:
            return None
        scoped["doc_id"] = docs
        return scoped

    def _shard_doc_ids(self, shard: int) -> list[str]:
        from edgerag.fleet.drift import shard_documents

        return [d for d, _ in shard_documents(self.engine, shard, self.shards)]


def _union(found: Iterable[_Ranked]) -> _Ranked:
    """Several shards' ranked lists as one (the router sorts and cuts each merged list)."""
    rankings: dict[str, list[tuple[int, float]]] = {}
    rows: dict[int, Hit] = {}
    for ranked, hits in found:
        for name, ranking in ranked.items():
            rankings.setdefault(name, []).extend(ranking)
        rows.update(hits)
    return rankings, rows


def _reply(found: _Ranked, mode: str, n: int) -> dict[str, Any]:
    """A replica's answer: ranked hits (dense, BM25), or a hybrid search's unfused ranked lists
    + rows, which the router fuses across shards."""
    rankings, rows = found
    if mode != "hybrid":
        return {"hits": [rows[key].to_dict() for key, _ in rankings["hits"]]}
    return {
        "rankings": {name: [[key, score] for key, score in r] for name, r in rankings.items()},
        "rows": {str(key): hit.to_dict() for key, hit in rows.items()},
        "n": n,
    }
