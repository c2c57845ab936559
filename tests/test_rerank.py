"""Rerankers: the hybrid bi-encoder + BM25 default against a numpy oracle, and the ONNX
cross-encoder loader with a tiny randomly initialised model built here with ``onnx``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgerag.errors import ConfigError, EncoderError
from edgerag.retrieval.rerank import HybridReranker
from edgerag.types import Hit

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

QUERY = "pump seal leaks at the shaft"


def test_hybrid_rerank_matches_the_formula(engine, docs):
    engine.ingest(docs)
    engine.ingest([("extra.txt", b"The shaft seal of the pump leaks when the gland is loose.")])
    hits = engine.search(QUERY, k=10).hits
    assert len(hits) == 4
    bm25 = {h.key: h.scores.get("bm25", 0.0) for h in hits}
    q = engine.encoder.encode([QUERY])[0]
    reranked = HybridReranker(w_dense=0.6, w_bm25=0.4).rerank(QUERY, hits, engine, q)
    top = max(bm25.values())
    for h in reranked:
        vec = engine.indexes["text"].get_vectors(np.array([h.key]))[0]
        expected_cos = float(vec @ q / np.linalg.norm(vec) / np.linalg.norm(q))
        assert h.scores["cosine"] == pytest.approx(expected_cos, abs=1e-5)
        expected = 0.6 * expected_cos + 0.4 * bm25[h.key] / top
        assert h.score == pytest.approx(expected, abs=1e-5) == h.scores["rerank"]
    scores = [h.score for h in reranked]
    assert scores == sorted(scores, reverse=True)
    assert {h.key for h in reranked} == set(bm25)


def test_hybrid_rerank_only_rescoring_top_n_keeps_the_tail(engine, docs):
    engine.ingest(docs)
    hits = engine.search(QUERY, k=10).hits
    tail_ids = [h.id for h in hits[1:]]
    out = HybridReranker(top_n=1).rerank(QUERY, hits, engine, engine.encoder.encode([QUERY])[0])
    assert [h.id for h in out[1:]] == tail_ids


def test_hybrid_rerank_survives_a_deleted_item(engine, docs):
    engine.ingest(docs)
    hits = engine.search(QUERY, k=10).hits
    engine.delete(hits[0].doc_id)
    out = HybridReranker().rerank(QUERY, hits, engine, engine.encoder.encode([QUERY])[0])
    assert out[-1].id == hits[0].id  # unscored: kept, after the scored ones
    assert "cosine" not in out[-1].scores


def test_hybrid_rejects_bad_weights():
    with pytest.raises(ConfigError):
        HybridReranker(w_dense=0, w_bm25=0)


# ------------------------------------------------------------------------------ cross-encoder
VOCAB, DIM, HIDDEN = 30522, 8, 4


def build_tiny_cross_encoder(path: Path, seed: int = 0, output_cols: int = 1) -> dict:
    """Embedding (+ token type) → masked mean → tanh(W1) → W2: a BERT-shaped toy, random."""
    rng = np.random.default_rng(seed)
    w = {
        "emb": rng.normal(size=(VOCAB, DIM)).astype(np.float32),
        "types": rng.normal(size=(2, DIM)).astype(np.float32),
        "w1": rng.normal(size=(DIM, HIDDEN)).astype(np.float32),
        "w2": rng.normal(size=(HIDDEN, output_cols)).astype(np.float32),
    }
    ints = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "s"])
        for n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", output_cols])
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    inits += [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "ax1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "ax2"),
    ]
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["x"]),
        helper.make_node("Gather", ["types", "token_type_ids"], ["t"]),
        helper.make_node("Add", ["x", "t"], ["h"]),
        helper.make_node("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mf", "ax2"], ["m"]),
        helper.make_node("Mul", ["h", "m"], ["hm"]),
        helper.make_node("ReduceSum", ["hm", "ax1"], ["s"], keepdims=0),
        helper.make_node("ReduceSum", ["m", "ax1"], ["cnt"], keepdims=0),
        helper.make_node("Div", ["s", "cnt"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "w1"], ["z"]),
        helper.make_node("Tanh", ["z"], ["a"]),
        helper.make_node("MatMul", ["a", "w2"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "tiny-cross-encoder", ints, [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return w


def oracle(w: dict, tokenizer, query: str, passage: str) -> float:
    enc = tokenizer.encode(query, passage)
    h = w["emb"][enc.ids] + w["types"][enc.type_ids]
    return float((np.tanh(h.mean(axis=0) @ w["w1"]) @ w["w2"])[-1])


@pytest.fixture
def tiny(tmp_path: Path):
    from edgerag.encoders.minilm import load_tokenizer, minilm_tokenizer_path

    model = tmp_path / "ce.onnx"
    weights = build_tiny_cross_encoder(model)
    (tmp_path / "tokenizer.json").write_bytes(minilm_tokenizer_path().read_bytes())
    return model, weights, load_tokenizer(max_tokens=64)


def passages() -> list[Hit]:
    texts = [
        "Replace the mechanical seal when the pump leaks.",
        "Torque the bolts to 25 Nm.",
        "Alarm E-107 means high discharge pressure.",
        "Grease the bearing every 2000 h.",
        "Check the pressure transmitter wiring.",
    ]
    return [
        Hit(
            key=i,
            id=f"d{i}#0",
            doc_id=f"d{i}",
            source="m.txt",
            modality="text",
            score=1.0 / (i + 1),
            text=t,
        )
        for i, t in enumerate(texts)
    ]


def test_cross_encoder_scores_match_a_numpy_oracle(tiny):
    from edgerag.retrieval.rerank import CrossEncoderReranker

    model, weights, tokenizer = tiny
    ce = CrossEncoderReranker(model, max_length=64, batch_size=2)  # tokenizer found next to it
    out = ce.rerank(QUERY, passages())
    expected = {h.id: oracle(weights, tokenizer, QUERY, h.text) for h in passages()}
    for h in out:
        assert h.scores["cross_encoder"] == pytest.approx(expected[h.id], abs=1e-4)
    assert [h.id for h in out] == sorted(expected, key=lambda i: -expected[i])


def test_cross_encoder_budget_stops_after_the_first_batch(tiny):
    from edgerag.retrieval.rerank import CrossEncoderReranker

    model, _, _ = tiny
    ce = CrossEncoderReranker(model, batch_size=2, budget_ms=0.0)
    out = ce.rerank(QUERY, passages())
    scored = [h for h in out if "cross_encoder" in h.scores]
    assert len(scored) == 2 and {h.id for h in scored} == {"d0#0", "d1#0"}
    assert [h.id for h in out[2:]] == ["d2#0", "d3#0", "d4#0"]  # retrieval order kept


def test_cross_encoder_two_class_output_uses_the_relevant_column(tmp_path, tiny):
    from edgerag.retrieval.rerank import CrossEncoderReranker

    _, _, tokenizer = tiny
    model = tmp_path / "two.onnx"
    weights = build_tiny_cross_encoder(model, seed=1, output_cols=2)
    (tmp_path / "two.json").write_bytes((tmp_path / "tokenizer.json").read_bytes())
    ce = CrossEncoderReranker(model, tmp_path / "two.json", max_length=64)
    scores = ce.score(QUERY, [h.text for h in passages()])
    expected = [oracle(weights, tokenizer, QUERY, h.text) for h in passages()]
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_cross_encoder_bad_files(tmp_path, tiny):
    from edgerag.retrieval.rerank import CrossEncoderReranker

    with pytest.raises(ConfigError, match="does not exist"):
        CrossEncoderReranker(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a loadable ONNX model"):
        CrossEncoderReranker(bad, tmp_path / "bad.json")


def test_cross_encoder_wrong_output_shape():
    from edgerag.retrieval.rerank.cross_encoder import _logits

    with pytest.raises(EncoderError, match="shape"):
        _logits(np.zeros((3, 1, 2), dtype=np.float32), 3)
