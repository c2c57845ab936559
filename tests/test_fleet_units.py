"""Fleet logic that needs no NATS: sharding, policies, merging, status verdicts, parsing."""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
import pytest

from edgerag.errors import ConfigError
from edgerag.fleet.ingest_stream import parse_message
from edgerag.fleet.nats import Names, check_token
from edgerag.fleet.policy import DEFAULT_POLICIES, Policies, parse_policy
from edgerag.fleet.router import merge
from edgerag.fleet.sharding import assign, replicas_for, shard_for
from edgerag.fleet.shardmap import FleetConfig
from edgerag.fleet.status import judge, render
from edgerag.retrieval.fusion import fuse


def test_shard_for_is_stable_and_balanced() -> None:
    ids = [f"doc-{i}" for i in range(4000)]
    first = [shard_for(d, 4) for d in ids]
    assert first == [shard_for(d, 4) for d in ids]
    counts = Counter(first)
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 850


def test_rendezvous_moves_few_replicas_when_a_node_joins() -> None:
    before = assign(16, ["a", "b", "c"], 2)
    after = assign(16, ["a", "b", "c", "d"], 2)
    moved = sum(len(set(after[s]) - set(before[s])) for s in range(16))
    assert all(len(set(v)) == 2 for v in after.values())
    assert 0 < moved <= 16  # only replicas that "d" wins move (about R/N of them)
    assert replicas_for(0, ["a"], 2) == ["a"]


def test_policies_defaults_overrides_and_errors() -> None:
    assert (
        DEFAULT_POLICIES["text"].max_lag_s == 30
        and DEFAULT_POLICIES["text"].drift_threshold == 0.05
    )
    assert (
        DEFAULT_POLICIES["image"].max_lag_s == 5
        and DEFAULT_POLICIES["audio"].drift_threshold == 0.02
    )
    policies = Policies().with_overrides(["image=1.5:0.01:2"])
    assert policies["image"].max_lag_s == 1.5 and policies["image"].retries == 2
    assert policies["unknown-modality"] == policies.fallback
    assert Policies.from_dict(policies.to_dict()) == policies
    with pytest.raises(ConfigError, match="MODALITY=MAX_LAG_S"):
        parse_policy("image")
    with pytest.raises(ConfigError, match="max_lag_s"):
        parse_policy("image=0:0.1")
    with pytest.raises(ConfigError, match="node id"):
        check_token("node id", "has.dot")


def test_fleet_config_roundtrip() -> None:
    config = FleetConfig(collection="plant3", shards=3, replicas=2, heartbeat_s=0.5)
    assert FleetConfig.from_json(config.to_json()) == config
    assert Names("plant3").ops(1, "image", "ab") == "edgerag.plant3.ops.1.image.ab"


def _hit(key: int, score: float) -> dict:
    return {"key": key, "score": score, "id": str(key), "doc_id": str(key), "text": ""}


def test_merge_by_score_and_hybrid_fused_like_one_node() -> None:
    parts = [{"hits": [_hit(1, 0.9), _hit(2, 0.5)]}, {"hits": [_hit(3, 0.7), _hit(4, 0.1)]}]
    assert [h["key"] for h in merge(parts, 3, "dense")] == [1, 3, 2]
    # Two shards' unfused lists: the router must fuse them as one node fuses the same lists
    # merged (each list's global top n), with the same function and weights.
    rng = np.random.default_rng(5)
    keys = list(range(40))
    dense = {key: float(s) for key, s in zip(keys, rng.uniform(0.1, 0.9, 40), strict=True)}
    bm25 = {key: float(s) for key, s in zip(keys[::2], rng.uniform(1, 12, 20), strict=True)}
    n, k = 10, 5

    def top(scores: dict[int, float], where: set[int], m: int) -> list[tuple[int, float]]:
        return sorted(((q, s) for q, s in scores.items() if q in where), key=lambda x: -x[1])[:m]

    shards = [set(keys[:17]), set(keys[17:])]
    parts = [
        {
            "rankings": {"dense": top(dense, keys_s, n), "bm25": top(bm25, keys_s, n)},
            "rows": {str(q): _hit(q, 0.0) for q in keys_s},
            "n": n,
        }
        for keys_s in shards
    ]
    whole = {"dense": top(dense, set(keys), n), "bm25": top(bm25, set(keys), n)}
    expected, label = fuse(whole, n)
    got = merge(parts, k, "hybrid")
    assert [(h["key"], h["score"]) for h in got] == [(q, round(s, 6)) for q, s in expected[:k]]
    assert label == "fused" and all(h["scores"]["fused"] == h["score"] for h in got)
    assert all("dense" in h["scores"] or "bm25" in h["scores"] for h in got)
    # a replica still answering in the old shape (hit lists per signal) merges the same way
    old = [
        {name: [_hit(q, s) for q, s in r] for name, r in part["rankings"].items()} for part in parts
    ]
    assert [h["key"] for h in merge(old, k, "hybrid")] == [h["key"] for h in got]


def _heartbeat(node: str, shards: dict[int, str], lag: float = 0.0, drift: float = 0.0) -> dict:
    mods = {
        "text": {
            "applied": 3,
            "pending": 0,
            "lag_s": lag,
            "drift": drift,
            "sampled": 3,
            "applied_seq": 3,
        }
    }
    return {
        "node": node,
        "ts": time.time(),
        "state": "serving",
        "lsn": 3,
        "shards": {
            str(s): {"state": st, "reason": "", "modalities": mods} for s, st in shards.items()
        },
    }


def test_judge_green_and_not_green() -> None:
    config = FleetConfig(shards=2, replicas=2)
    shardmap = {0: ["a", "b"], 1: ["b", "c"]}
    members = {n: {} for n in "abc"}
    beats = {
        "a": _heartbeat("a", {0: "serving"}),
        "b": _heartbeat("b", {0: "serving", 1: "serving"}),
        "c": _heartbeat("c", {1: "serving"}),
    }
    status = judge(config, members, shardmap, beats)
    assert status["green"], status["problems"]
    assert "GREEN" in render(status)
    beats["c"] = _heartbeat("c", {1: "quarantined"})
    beats["a"] = _heartbeat("a", {0: "serving"}, drift=0.2)
    status = judge(config, members, shardmap, beats)
    assert not status["green"]
    assert any("quarantined" in p for p in status["problems"])
    assert any("drift" in p for p in status["problems"])
    beats["b"]["ts"] -= 60
    status = judge(config, members, shardmap, beats)
    assert status["nodes"]["b"]["state"] == "unreachable"


def test_parse_message_from_client_headers_and_mqtt_payloads() -> None:
    names = Names()
    msg = parse_message(
        names,
        "edgerag.default.in.docs",
        b"body",
        {"Edgerag-Id": "a%2Fb.md", "Edgerag-Name": "b.md", "Edgerag-Meta": "%7B%22k%22%3A%201%7D"},
    )
    assert (msg.doc_id, msg.name, msg.metadata) == ("a/b.md", "b.md", {"k": 1})
    event = json.dumps({"id": "e1", "text": "overheated", "metadata": {"line": "7"}}).encode()
    msg = parse_message(names, "edgerag.default.in.press7.evt", event, {})
    assert msg.doc_id == "e1" and msg.data == b"overheated"
    assert msg.metadata == {"line": "7", "device": "press7"}
    raw = parse_message(names, "edgerag.default.in.press7.note", b"plain text", {})
    assert raw.doc_id == "press7/note" and raw.name == "press7/note.txt"


@pytest.fixture
def holds_1_and_3():  # type: ignore[no-untyped-def]
    """An engine holding shards 1 and 3 of 4, its responder, the documents, and a counter of
    the engine's searches."""
    from conftest import FAST
    from edgerag import Engine
    from edgerag.fleet.router import Responder
    from fleet_harness import make_docs

    docs = make_docs(120)
    with Engine.open(":memory:", FAST) as engine:
        for name, text in docs.items():
            engine.ingest([(name, text.encode())], {"doc_id": name})
        for name in [d for d in docs if shard_for(d, 4) not in (1, 3)]:
            engine.delete(name)
        responder = Responder(
            None,
            engine,
            Names("t"),
            "n1",
            4,
            lambda s: None if s in (1, 3) else "not a replica of this shard",
            lambda: [1, 3],
            None,  # type: ignore[arg-type]
        )
        searches = Counter()
        search = engine.search

        def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            searches["n"] += 1
            return search(*args, **kwargs)

        engine.search = counted  # type: ignore[method-assign]
        yield search, responder, docs, searches


def test_responder_answers_every_held_shard_from_one_search(holds_1_and_3) -> None:
    """A node holding shards 1 and 3 gets the router's same request on both subjects: one
    over-fetched search answers both, each answer holds only its shard's top k, equal to a
    search filtered to that shard's documents, in every mode."""
    import asyncio

    search, responder, docs, searches = holds_1_and_3

    async def ask(payload: bytes) -> list[dict]:
        return await asyncio.gather(*(responder._answer(s, payload) for s in (1, 3)))

    for mode in ("dense", "bm25", "hybrid"):
        request = {"q": "pump seal torque", "k": 5, "mode": mode, "deadline": time.time()}
        searches.clear()
        answers = asyncio.run(ask(json.dumps(request).encode()))
        if mode != "hybrid":
            assert searches["n"] == 1, mode  # one search, not one per shard
        for shard, answer in zip((1, 3), answers, strict=True):
            mine = [d for d in docs if shard_for(d, 4) == shard]
            if mode == "hybrid":
                keys = {int(k) for r in answer["rankings"].values() for k, _ in r}
                assert keys == {int(k) for k in answer["rows"]}
                docs_of = {row["doc_id"] for row in answer["rows"].values()}
                assert docs_of and docs_of <= set(mine)
                continue
            want = search("pump seal torque", 5, {"doc_id": mine}, mode).hits
            assert [(h["doc_id"], h["score"]) for h in answer["hits"]] == [
                (h.doc_id, h.score) for h in want
            ], (mode, shard)
    assert responder.served == {1: 3, 3: 3} and not responder._shared


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_responder_answers_a_node_request_for_several_shards(holds_1_and_3, mode) -> None:
    """The router's one request per node: asked for every shard it holds, the node runs one
    plain search (its data is theirs); asked for some, it answers with their part only; a shard
    it must not answer is named with the reason and the others are still answered."""
    import asyncio

    search, responder, docs, searches = holds_1_and_3
    query = "pump seal torque"

    def ask(shards: list[int]) -> dict:
        request = {"q": query, "k": 5, "mode": mode, "deadline": time.time(), "shards": shards}
        searches.clear()
        return asyncio.run(responder._answer_shards(json.dumps(request).encode()))

    def docs_of(answer: dict) -> list[tuple[str, float]]:
        if mode == "hybrid":
            return sorted({(row["doc_id"], 0.0) for row in answer["rows"].values()})
        return [(h["doc_id"], h["score"]) for h in answer["hits"]]

    def expected(shards: list[int] | None) -> list[tuple[str, float]]:
        scope = (
            None if shards is None else {"doc_id": [d for d in docs if shard_for(d, 4) in shards]}
        )
        return [(h.doc_id, h.score) for h in search(query, 5, scope, mode).hits]

    both = ask([3, 1])
    assert both["answered"] == [1, 3] and both["errors"] == {}
    if mode != "hybrid":
        assert searches["n"] == 1 and docs_of(both) == expected(None)
    one = ask([3])
    assert one["answered"] == [3]
    refused = ask([1, 2])
    assert refused["answered"] == [1]
    assert refused["errors"] == {"2": "unavailable: not a replica of this shard"}
    for answer, shards in ((one, [3]), (refused, [1])):
        mine = {d for d in docs if shard_for(d, 4) in shards}
        got = docs_of(answer)
        assert got and {d for d, _ in got} <= mine
        if mode != "hybrid":
            assert got == expected(shards), shards
    assert "not a replica" in ask([2])["error"]
    assert responder.served == {1: 2, 3: 2}


class _View:
    """The part of a FleetView the router plans with: each shard's healthy replicas."""

    def __init__(self, healthy: dict[int, list[str]]) -> None:
        self.shardmap = healthy

    def healthy_replicas(self, shard: int) -> list[str]:
        return list(self.shardmap[shard])


def test_router_asks_as_few_nodes_as_cover_every_shard() -> None:
    from edgerag.fleet.router import Router

    # 4 shards x 2 replicas on 4 nodes (what assign() gives node0..node3)
    healthy = {
        0: ["node0", "node2"],
        1: ["node1", "node3"],
        2: ["node2", "node1"],
        3: ["node1", "node0"],
    }
    router = Router(None, _View(healthy))  # type: ignore[arg-type]
    second = Counter()
    for _ in range(40):
        groups, rest = router._plan(range(4))
        assert not rest
        assert sorted(s for _, shards in groups for s in shards) == [0, 1, 2, 3]  # each once
        assert all(node in healthy[s] for node, shards in groups for s in shards)
        assert groups[0] == ("node1", [1, 2, 3]) and len(groups) == 2
        second[groups[1][0]] += 1
    assert set(second) == {"node0", "node2"}  # shard 0's replicas share its reads
    healthy[1] = []  # no healthy replica of shard 1 in the view: its queue group answers
    groups, rest = router._plan(range(4))
    assert rest == [1] and sorted(s for _, shards in groups for s in shards) == [0, 2, 3]


def test_responder_uses_the_routers_vector_only_from_the_same_encoder(holds_1_and_3) -> None:
    """A question the router encoded is not encoded again on the node when the request's
    encoder id is the node's text encoder; from another encoder the vector is ignored. Same
    answer either way."""
    import asyncio
    import base64

    from edgerag.fleet.encoders import text_encoder_id

    search, responder, docs, searches = holds_1_and_3
    encoder = responder.engine.encoder
    encodes = Counter()
    encode = encoder.encode

    def counted(texts):  # type: ignore[no-untyped-def]
        encodes["n"] += 1
        return encode(texts)

    encoder.encode = counted
    query = "grease the pump bearing"
    vector = base64.b64encode(np.asarray(encode([query])[0], dtype="<f4").tobytes()).decode()
    answers = {}
    for label, extra in (
        ("none", {}),
        ("same", {"vector": vector, "encoder": text_encoder_id(encoder)}),
        ("other", {"vector": vector, "encoder": "minilm/1/64d"}),
    ):
        request = {"q": query, "k": 5, "mode": "dense", "deadline": time.time(), "shards": [1, 3]}
        encodes.clear()
        responder.engine.cache.clear()
        answer = asyncio.run(responder._answer_shards(json.dumps({**request, **extra}).encode()))
        answers[label] = ([h["doc_id"] for h in answer["hits"]], encodes["n"])
    assert answers["none"][0] == answers["same"][0] == answers["other"][0] != []
    assert (answers["none"][1], answers["same"][1], answers["other"][1]) == (1, 0, 1)


def test_a_query_vector_of_the_wrong_shape_is_refused(engine, docs) -> None:
    from edgerag import Query

    engine.ingest([docs])
    with pytest.raises(ConfigError, match="text_vector must be 64 finite values"):
        engine.search(Query(text="pump", text_vector=np.ones(3, dtype=np.float32)))
    with pytest.raises(ConfigError, match="not all zero"):
        engine.search(Query(text="pump", text_vector=np.zeros(64, dtype=np.float32)))


def test_router_encodes_only_with_the_fleets_text_encoder() -> None:
    import base64

    from edgerag.encoders.fake import HashEncoder
    from edgerag.fleet.router import Router

    view = _View({0: ["a"]})
    view.config = FleetConfig(collection="c", shards=1, encoders={"text": "hash/1/64d"})
    with_64 = Router(None, view, encoder=HashEncoder(64))  # type: ignore[arg-type]
    got = with_64._query_vector("pump seal")
    assert got["encoder"] == "hash/1/64d"
    vec = np.frombuffer(base64.b64decode(got["vector"]), dtype="<f4")
    assert np.allclose(vec, HashEncoder(64).encode(["pump seal"])[0])
    assert Router(None, view, encoder=HashEncoder(32))._query_vector("pump") == {}  # type: ignore[arg-type]
    assert Router(None, view)._query_vector("pump") == {}  # type: ignore[arg-type]
