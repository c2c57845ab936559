"""The faiss engine's exact scan over its own codes (filtered searches): the gather split over
two threads, the scratch indexes kept between scans and the codes kept for a repeated set give
the same answers as a fresh, serial scan; anything kept follows every write and the
quantizer's ranges when they are retrained."""

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


@pytest.fixture
def no_kept_sets(monkeypatch):
    """Scans gather every time (the scratch free list on its own)."""
    monkeypatch.setattr(faiss_engine, "GATHERED_KEEP_BYTES", 0)


def test_split_gather_and_kept_scratch_equal_a_serial_fresh_scan(monkeypatch, no_kept_sets) -> None:
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


def test_a_large_scan_does_not_keep_its_scratch(monkeypatch, no_kept_sets) -> None:
    eng = engine()
    monkeypatch.setattr(faiss_engine, "SCRATCH_KEEP_BYTES", 100 * DIM)
    eng.scan_codes(QUERIES[:1], K, ALLOWED[:50])
    assert len(eng._scratches) == 1
    eng.scan_codes(QUERIES[:1], K, ALLOWED)
    assert eng._scratches == []


def test_the_kept_scratch_scores_with_the_ranges_as_retrained(no_kept_sets) -> None:
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


def test_threads_scan_side_by_side_with_their_own_scratch(no_kept_sets) -> None:
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


def count_gathers(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = faiss_engine._gather

    def counting(codes, rows, out) -> None:
        calls.append(len(rows))
        real(codes, rows, out)

    monkeypatch.setattr(faiss_engine, "_gather", counting)
    return calls


def test_a_set_scanned_once_reuses_the_free_scratch(monkeypatch) -> None:
    eng = engine()
    for start in range(0, 5000, 1000):  # five sets, each scanned once
        eng.scan_codes(QUERIES[:1], K, ALLOWED[start : start + 1000])
    assert eng._gathered == [] and len(eng._scratches) == 1  # one warm scratch, reused


def test_a_repeated_set_scans_the_codes_it_gathered(monkeypatch) -> None:
    eng = engine()
    gathers = count_gathers(monkeypatch)
    first = eng.scan_codes(QUERIES, 3 * K, ALLOWED)  # gathered, remembered
    again = [eng.scan_codes(QUERIES, 3 * K, ALLOWED.copy()) for _ in range(4)]  # equal, not same
    assert gathers == [len(ALLOWED)] * 2  # gathered again, kept, then scanned as kept
    for res in again:
        np.testing.assert_array_equal(res.keys, first.keys)
        np.testing.assert_array_equal(res.scores, first.scores)
    monkeypatch.setattr(faiss_engine, "GATHERED_KEEP_BYTES", 0)
    fresh = faiss_engine.FaissEngine.scan_codes(eng, QUERIES, 3 * K, ALLOWED)
    np.testing.assert_array_equal(fresh.keys, first.keys)
    # one key more or less is another set: gathered anew
    eng.scan_codes(QUERIES, K, ALLOWED[1:])
    assert gathers[-1] == len(ALLOWED) - 1


def test_every_write_drops_the_kept_sets(monkeypatch) -> None:
    eng = engine(n=N - 1)  # the last key is not in the index yet
    new_key, new_vec = KEYS[-1], DATA[-1]
    allowed = np.append(ALLOWED[:100], new_key)
    query = new_vec[None, :]
    eng.scan_codes(query, K, allowed)
    before = eng.scan_codes(query, K, allowed)  # kept from here on
    assert eng._gathered
    assert new_key not in before.keys
    eng.add(np.array([new_key]), new_vec[None, :])  # added: found at once
    added = eng.scan_codes(query, K, allowed)
    assert added.keys[0, 0] == new_key
    eng.remove(np.array([new_key]))  # removed: gone at once, the others all there
    removed = eng.scan_codes(query, K, allowed)
    assert new_key not in removed.keys and (removed.keys >= 0).all()
    eng.add(np.array([new_key]), new_vec[None, :])
    eng.scan_codes(query, K, allowed)
    assert eng._gathered
    eng.remove(KEYS[: N // 2])  # past AUTO_COMPACT_FRACTION: compacted, labels renumbered
    assert eng.tombstones == 0
    res = eng.scan_codes(query, K, allowed)
    live = allowed[np.isin(allowed, KEYS[N // 2 :])]
    found = res.keys[res.keys >= 0]
    assert len(found) == min(K, len(live)) and np.isin(found, live).all()
    assert res.keys[0, 0] == new_key


def test_a_kept_set_follows_a_retrain() -> None:
    eng = engine(n=100)  # trained on 100 vectors
    allowed = KEYS[:100]
    for _ in range(2):
        eng.scan_codes(QUERIES[:1], K, allowed)  # kept with the first ranges
    assert eng._gathered
    for start in range(100, N, 100):  # retrained at 400, 1,600 and 6,400
        eng.add(KEYS[start : start + 100], DATA[start : start + 100])
    res = eng.scan_codes(QUERIES[:1], K, allowed)
    top = np.sort(code_scores(eng, QUERIES[0], allowed))[::-1][:K]
    np.testing.assert_allclose(res.scores[0], top, rtol=1e-4, atol=1e-4)


def test_kept_sets_stay_within_their_budget(monkeypatch) -> None:
    eng = engine()
    sets = [ALLOWED[i * 1000 : (i + 1) * 1000] for i in range(4)]
    monkeypatch.setattr(faiss_engine, "GATHERED_KEEP_BYTES", 2 * 1000 * DIM)  # two sets
    gathers = count_gathers(monkeypatch)
    for allowed in sets + sets:  # each scanned twice: kept
        eng.scan_codes(QUERIES[:1], K, allowed)
    assert [len(g.allowed) for g in eng._gathered] == [1000, 1000]
    eng.scan_codes(QUERIES[:1], K, sets[3])  # kept: no gather
    eng.scan_codes(QUERIES[:1], K, sets[0])  # dropped: gathered again
    assert len(gathers) == 9
    assert eng._gathered[-1].matches(np.sort(sets[0]))
    assert sum(g.nbytes for g in eng._gathered) <= 2 * 1000 * DIM
    assert eng._scratches  # the dropped sets' scratches went back to the free list


def test_a_dropped_set_is_recycled_only_after_its_last_reader() -> None:
    eng = engine()
    for _ in range(2):
        eng.scan_codes(QUERIES[:1], K, ALLOWED)
    reading = eng._gathered_for(np.sort(ALLOWED))  # a scan searching it right now
    assert reading is not None and not eng._scratches
    eng.add(KEYS[:1], DATA[:1])  # a write drops every kept set
    assert eng._gathered == [] and not eng._scratches  # still being read: not recycled
    eng._release(reading)
    assert [s for _, s in eng._scratches] == [reading.scratch]


def test_threads_share_a_kept_set() -> None:
    eng = engine()
    expected = eng.scan_codes(QUERIES, K, ALLOWED)
    others = [ALLOWED[:2000], ALLOWED[2000:4000]]
    results: list[tuple[np.ndarray, object]] = []

    def scan(allowed: np.ndarray) -> None:
        for _ in range(5):
            results.append((allowed, eng.scan_codes(QUERIES, K, allowed)))

    # the same kept set side by side, and other sets pushing it in and out meanwhile
    threads = [threading.Thread(target=scan, args=(a,)) for a in (ALLOWED, ALLOWED, *others)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    for allowed, res in results:
        if allowed is ALLOWED:
            np.testing.assert_array_equal(res.keys, expected.keys)  # type: ignore[attr-defined]
        else:
            assert np.isin(res.keys, allowed).all()  # type: ignore[attr-defined]


def test_loading_another_index_drops_the_kept_sets(tmp_path) -> None:
    eng = engine()
    for _ in range(2):
        eng.scan_codes(QUERIES[:1], K, ALLOWED)
    assert eng._gathered
    other = engine(n=N // 2)
    other.save(tmp_path)
    eng.load(tmp_path)
    res = eng.scan_codes(QUERIES[:1], K, ALLOWED)
    assert np.isin(res.keys[res.keys >= 0], KEYS[: N // 2]).all()


def test_a_repeated_engine_filter_reuses_its_codes_until_a_write(tmp_path, monkeypatch) -> None:
    """End to end: the retriever's filter cache hands the index the same allowed keys, so a
    filtered search asked again scans the kept codes; a write (here a delete) drops them."""
    from edgerag.bench.synthetic import build_synthetic
    from edgerag.types import Query, item_key

    per_doc = 1000  # a doc filter allows 1,000 keys: the exact scan over codes (> 4 × 100)
    engine = build_synthetic(tmp_path / "c", DATA[:3000], IndexConfig(quantization="int8"), per_doc)
    doc = {"doc_id": "synthetic-000001"}
    gathers = count_gathers(monkeypatch)
    inside = DATA[per_doc : 2 * per_doc]

    def top(i: int) -> list[int]:  # a different question each time: no result-cache hit
        hits = engine.search(
            Query(text=f"q{i}", text_vector=QUERIES[i]), k=K, filters=doc, mode="dense"
        ).hits
        assert {h.doc_id for h in hits} == {"synthetic-000001"}
        return [h.key for h in hits]

    first = [top(i) for i in range(4)]
    assert len(gathers) == 2  # gathered on the first two searches, kept from the second
    for i, keys in enumerate(first):  # exact within the document, kept codes or not
        best = np.argsort(-(inside @ QUERIES[i]))[:K]
        assert keys == [item_key("synthetic-000001", int(p)) for p in best]
    engine.delete("synthetic-000002")
    assert engine.indexes["text"]._engine._gathered == []
    assert [top(i) for i in range(4)] == first  # the same answers, gathered anew
    assert len(gathers) == 3  # once: a set seen before the write is kept at once
    engine.close()


def test_a_repeated_graph_filter_reuses_its_bitmap_until_a_write(monkeypatch) -> None:
    """The filtered graph search (a wide filter) keeps the label bitmap of recent allowed
    sets: the same answers without mapping the keys again; a write drops them."""
    eng = engine(n=N - 1)  # the last key is not in the index yet
    new_key, new_vec = KEYS[-1], DATA[-1]
    allowed = np.sort(np.append(ALLOWED, new_key))
    lookups: list[int] = []
    real = eng._map.lookup

    def counting(keys):
        lookups.append(len(keys))
        return real(keys)

    monkeypatch.setattr(eng._map, "lookup", counting)
    first = eng.search(QUERIES, K, allowed)
    again = eng.search(QUERIES, K, allowed.copy())
    assert lookups == [len(allowed)]
    np.testing.assert_array_equal(again.keys, first.keys)
    assert np.isin(first.keys[first.keys >= 0], ALLOWED).all()
    for start in range(0, 8 * 50, 50):  # eight other sets push it out
        eng.search(QUERIES[:1], K, np.sort(ALLOWED[start : start + 50]))
    eng.search(QUERIES, K, allowed)
    assert len(lookups) == 10
    eng.add(np.array([new_key]), new_vec[None, :])  # a write: mapped again, the new key in
    res = eng.search(new_vec[None, :], K, allowed)
    assert len(lookups) == 11 and res.keys[0, 0] == new_key
    eng.remove(np.array([new_key]))
    assert new_key not in eng.search(new_vec[None, :], K, allowed).keys
    assert len(lookups) == 12


def test_search_and_scan_name_each_key_by_its_label() -> None:
    """Both result kinds carry the engine's label of every key (rescoring's row hint) and -1
    where a query found no key; a label naming another key would cost the hint its use."""
    eng = engine()
    eng.remove(KEYS[:50])  # tombstones: labels are no longer every key's position
    scan = eng.scan_codes(QUERIES, 3 * K, ALLOWED[:20])  # fewer keys than asked: padded
    assert scan is not None and (scan.keys < 0).any()
    for res in (eng.search(QUERIES, 3 * K), scan):
        assert res.labels is not None and res.labels.shape == res.keys.shape
        found = res.keys >= 0
        assert (res.labels[~found] == -1).all()
        np.testing.assert_array_equal(eng._label_keys[res.labels[found]], res.keys[found])
        np.testing.assert_array_equal(eng._map.lookup(res.keys[found]), res.labels[found])
