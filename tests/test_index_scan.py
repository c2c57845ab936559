"""The faiss engine's exact scan over its own codes (filtered searches): the gather split over
two threads and the scratch indexes kept between scans give the same answers as a fresh,
serial scan, and a kept scratch follows the quantizer's ranges when they are retrained."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("faiss")

from conftest_index import brute_force, clustered, queries_near, recall  # noqa: E402
from edgerag.index import faiss as faiss_engine  # noqa: E402
from edgerag.index.base import IndexConfig  # noqa: E402

N, DIM, K = 6000, 64, 10
DATA = clustered(N, DIM, seed=11)
KEYS = np.arange(N, dtype=np.int64) * 2 + 5
QUERIES = queries_near(DATA, 20, seed=12)
ALLOWED = np.random.default_rng(13).choice(KEYS, 5000, replace=False)


def engine(n: int = N) -> faiss_engine.FaissEngine:
    cfg = IndexConfig(quantization="int8", connectivity=16, ef_construction=64)
    eng = faiss_engine.FaissEngine(DIM, "cos", cfg)
    eng.vector_source = lambda keys: DATA[(keys - 5) // 2]
    for start in range(0, n, 1000):
        eng.add(KEYS[start : min(n, start + 1000)], DATA[start : min(n, start + 1000)])
    return eng


def code_scores(eng: faiss_engine.FaissEngine, query: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each key's score on its decoded int8 code: what the graph itself computes."""
    storage = eng.faiss.downcast_index(eng._index.storage)
    labels = eng._map.lookup(keys)
    decoded = storage.reconstruct_batch(labels)
    return decoded @ query


def test_split_gather_and_kept_scratch_equal_a_serial_fresh_scan(monkeypatch) -> None:
    eng = engine()
    monkeypatch.setattr(faiss_engine, "PARALLEL_GATHER_MIN", 1 << 30)  # serial
    serial = eng.scan_codes(QUERIES, 3 * K, ALLOWED)
    monkeypatch.setattr(faiss_engine, "PARALLEL_GATHER_MIN", 64)  # split over two threads
    for _ in range(3):  # the second and third scans reuse this thread's scratch
        split = eng.scan_codes(QUERIES, 3 * K, ALLOWED)
        np.testing.assert_array_equal(split.keys, serial.keys)
        np.testing.assert_array_equal(split.scores, serial.scores)
    assert len(eng._scratches) == 1
    # a smaller set after a larger one: the kept buffer shrinks, nothing of the old set leaks
    few = ALLOWED[:700]
    res = eng.scan_codes(QUERIES, K, few)
    assert np.isin(res.keys[res.keys >= 0], few).all()
    mask = np.isin(KEYS, few)
    truth, _ = brute_force(DATA[mask], KEYS[mask], QUERIES, K)
    assert recall(res.keys, truth) >= 0.9  # int8 codes alone, before any rescoring


def test_a_large_scan_does_not_keep_its_scratch(monkeypatch) -> None:
    eng = engine()
    monkeypatch.setattr(faiss_engine, "SCRATCH_KEEP_BYTES", 100 * DIM)
    eng.scan_codes(QUERIES[:1], K, ALLOWED[:50])
    assert len(eng._scratches) == 1
    eng.scan_codes(QUERIES[:1], K, ALLOWED)
    assert eng._scratches == []


def test_the_kept_scratch_scores_with_the_ranges_as_retrained() -> None:
    eng = engine(n=100)  # trained on 100 vectors
    allowed = KEYS[:100]
    eng.scan_codes(QUERIES[:1], K, allowed)  # the engine now keeps a scratch
    for start in range(100, N, 100):  # small batches: retrained at 400, 1,600 and 6,400
        eng.add(KEYS[start : start + 100], DATA[start : start + 100])
    assert eng._trained_on > 100
    res = eng.scan_codes(QUERIES[:1], K, ALLOWED)
    expected = code_scores(eng, QUERIES[0], ALLOWED)
    top = np.sort(expected)[::-1][:K]
    np.testing.assert_allclose(res.scores[0], top, rtol=1e-4, atol=1e-4)


def test_threads_scan_side_by_side_with_their_own_scratch() -> None:
    eng = engine()
    expected = eng.scan_codes(QUERIES, K, ALLOWED)
    results: list[object] = []

    def scan(allowed: np.ndarray) -> None:
        for _ in range(5):
            results.append(eng.scan_codes(QUERIES, K, allowed))

    threads = [threading.Thread(target=scan, args=(ALLOWED,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 15
    assert 1 <= len(eng._scratches) <= faiss_engine._cores()  # kept: one per core at most
    for res in results:
        np.testing.assert_array_equal(res.keys, expected.keys)  # type: ignore[attr-defined]
