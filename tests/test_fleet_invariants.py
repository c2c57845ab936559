"""Fleet invariants without a server: the status verdict on positions, encoders and refused
nodes; drift over nothing is unknown; positions live in (and vanish with) the store."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from conftest import FAST
from edgerag import Engine
from edgerag.fleet.drift import DriftReport
from edgerag.fleet.encoders import engine_encoders, mismatches, op_encoders
from edgerag.fleet.positions import StoredPositions
from edgerag.fleet.shardmap import FleetConfig
from edgerag.fleet.status import judge, render
from edgerag.store.ops import UPSERT, Op, SpaceVectors

ENCODERS = {"text": "hash/1/64d"}


def _beat(node: str, positions: dict[int, int], encoders: dict[str, str] | None = None) -> Any:
    return {
        "node": node,
        "ts": time.time(),
        "state": "serving",
        "encoders": encoders or ENCODERS,
        "shards": {
            str(s): {
                "state": "serving",
                "reason": "",
                "modalities": {"text": {"position": p, "applied": p, "pending": 0, "lag_s": 0.0}},
            }
            for s, p in positions.items()
        },
    }


def _fleet() -> tuple[FleetConfig, dict[int, list[str]], dict[str, Any]]:
    config = FleetConfig(shards=2, replicas=2, encoders=ENCODERS)
    return config, {0: ["a", "b"], 1: ["a", "b"]}, {"a": {}, "b": {}}


def test_judge_replica_behind_the_log_or_another_replica_is_not_green() -> None:
    config, shardmap, members = _fleet()
    beats = {"a": _beat("a", {0: 10, 1: 7}), "b": _beat("b", {0: 10, 1: 7})}
    marks = {"0": {"text": 10}, "1": {"text": 7}}
    assert judge(config, members, shardmap, beats, high_water=marks)["green"]
    # b's store is behind the log (a wiped disk that resumed at the old ack point).
    beats["b"] = _beat("b", {0: 0, 1: 7})
    status = judge(config, members, shardmap, beats, high_water=marks)
    assert not status["green"]
    assert "shard 0 on b: text behind (applied log position 0, shard at 10)" in status["problems"]
    # Without the log's marks (a node's own view), the other replica is the reference.
    status = judge(config, members, shardmap, beats)
    assert not status["green"] and status["shards"]["0"]["replicas"]["b"]["behind"]


def test_judge_refused_node_and_encoder_difference_are_not_green() -> None:
    config, shardmap, members = _fleet()
    beats = {"a": _beat("a", {0: 1, 1: 1}), "b": _beat("b", {0: 1, 1: 1})}
    beats["b"]["encoders"] = {"text": "hash/2/64d"}
    status = judge(config, members, shardmap, beats)
    assert "node b: text encoder hash/2/64d, the fleet's is hash/1/64d" in status["problems"]
    beats["b"] = {
        "node": "b",
        "ts": time.time(),
        "state": "refused",
        "reason": "encoder differs from the fleet's: text space: ...",
        "encoders": {"text": "hash/2/64d"},
        "shards": {},
    }
    status = judge(config, members, shardmap, beats)
    assert not status["green"]
    assert any(p.startswith("node b refused: encoder differs") for p in status["problems"])
    assert status["shards"]["0"]["replicas"]["b"]["state"] == "refused"
    assert "refused" in render(status)


def test_drift_over_zero_items_is_unknown_never_verified() -> None:
    assert DriftReport(0, "text").verdict == "unknown"
    assert DriftReport(0, "text", sampled=3).verdict == "checked"
    config, shardmap, members = _fleet()
    beats = {"a": _beat("a", {0: 1, 1: 1}), "b": _beat("b", {0: 1, 1: 1})}
    beats["a"]["shards"]["0"]["modalities"]["text"].update(drift=None, sampled=0)
    assert "unknown" in render(judge(config, members, shardmap, beats))


def test_encoder_ids_and_mismatches() -> None:
    with Engine.open(":memory:", FAST) as engine:
        mine = engine_encoders(engine.indexes)
    assert mine == {"text": "hash/1/64d"}
    assert mismatches({"text": "minilm/1/384d"}, mine) == [
        "text space: this node encodes with hash/1/64d, the fleet with minilm/1/384d"
    ]
    assert mismatches({"visual": "x/1/8d"}, mine) == []
    op = Op(
        kind=UPSERT,
        doc_id="d",
        vectors={
            "text": SpaceVectors("hash", "1", np.array([1]), np.zeros((1, 32), dtype=np.float32))
        },
    )
    assert op_encoders(op) == {"text": "hash/1/32d"}


def test_positions_live_in_the_store(tmp_path) -> None:
    with Engine.open(tmp_path / "kb", FAST) as engine:
        positions = StoredPositions(engine.store, "default")
        assert positions.get(0, "text") == 0
        positions.set(0, "text", 42)
        positions.set(1, "image", 7)
        assert StoredPositions(engine.store, "other").get(0, "text") == 0
    with Engine.open(tmp_path / "kb", FAST) as engine:  # survives with the data
        positions = StoredPositions(engine.store, "default")
        assert (positions.get(0, "text"), positions.get(1, "image")) == (42, 7)
        positions.reset(0, ["text", "image"])
        assert positions.get(0, "text") == 0 and positions.get(1, "image") == 7
