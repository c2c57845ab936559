"""SpaceIndex: persistence, corruption detection, crash leftovers, planner, threads, extras."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import threading

import numpy as np
import pytest

from conftest_index import ENGINES, brute_force, clustered, queries_near, recall
from edgerag.errors import IndexCorruptError, MissingExtraError, NotFoundError
from edgerag.index import create_engine
from edgerag.index.base import IndexConfig
from edgerag.index.space import MANIFEST, SpaceIndex
from edgerag.types import SpaceSpec

N, DIM, K = 2000, 64, 10
DATA = clustered(N, DIM, seed=5)
KEYS = np.arange(N, dtype=np.int64) * 3 + 1
QUERIES = queries_near(DATA, 50, seed=6)
SPEC = SpaceSpec("text", "fake", "1", DIM)


def cfg(engine: str = "faiss", quant: str = "int8", **kw) -> IndexConfig:
    # small graphs build fast; these tests are about files and plans, recall is checked elsewhere
    kw = {"connectivity": 16, "ef_construction": 64, **kw}
    return dataclasses.replace(IndexConfig(backend=engine, quantization=quant), **kw)


def populated(path, engine="faiss", quant="int8", lsn=7) -> SpaceIndex:
    space = SpaceIndex.open(path, SPEC, cfg(engine, quant))
    space.upsert(KEYS[:1500], DATA[:1500])
    space.remove(KEYS[:100])
    space.upsert(KEYS[1500:], DATA[1500:])
    space.checkpoint(lsn)
    return space


def test_open_missing_or_empty_directory_is_a_new_index(tmp_path):
    for d in (tmp_path / "nope", tmp_path):
        space = SpaceIndex.open(d, SPEC, cfg())
        assert space.applied_lsn == 0 and len(space) == 0
        res, plan = space.search(QUERIES, K)
        assert plan == "empty" and (res.keys == -1).all()
        space.close()


@pytest.mark.parametrize("quant", ["f32", "int8", "binary"])
@pytest.mark.parametrize("engine", ENGINES)
def test_reopen_after_checkpoint_gives_identical_results(tmp_path, engine, quant):
    space = populated(tmp_path, engine, quant)
    before, plan = space.search(QUERIES, K)
    allowed = KEYS[200:800]
    before_f, _ = space.search(QUERIES, K, allowed)
    keys_before = space.keys()
    space.close()
    again = SpaceIndex.open(tmp_path, SPEC, cfg(engine, quant))
    assert again.applied_lsn == 7
    assert len(again) == N - 100
    assert np.array_equal(again.keys(), keys_before)
    after, plan2 = again.search(QUERIES, K)
    assert plan == plan2
    assert np.array_equal(after.keys, before.keys)
    np.testing.assert_allclose(after.scores, before.scores, rtol=1e-6)
    assert np.array_equal(again.search(QUERIES, K, allowed)[0].keys, before_f.keys)
    np.testing.assert_allclose(again.get_vectors(KEYS[500:510]), DATA[500:510], atol=1e-6)
    # still writable after reopening, and a second checkpoint supersedes the first
    again.upsert(KEYS[:100], DATA[:100])
    again.checkpoint(9)
    again.close()
    third = SpaceIndex.open(tmp_path, SPEC, cfg(engine, quant))
    assert third.applied_lsn == 9 and len(third) == N
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ckpt-")) == [
        "ckpt-000002"
    ]
    third.close()


def test_writes_after_checkpoint_are_dropped_on_reopen(tmp_path):
    """A crash after a checkpoint: the op log replays from applied_lsn, the tail is discarded."""
    space = populated(tmp_path)
    space.upsert(np.array([10**9]), DATA[:1])  # appended to originals, never checkpointed
    space.close()
    again = SpaceIndex.open(tmp_path, SPEC, cfg())
    assert again.applied_lsn == 7 and len(again) == N - 100
    with pytest.raises(NotFoundError):
        again.get_vectors([10**9])
    again.upsert(np.array([10**9]), DATA[:1])  # and the file keeps working after truncation
    again.checkpoint(8)
    again.close()
    assert len(SpaceIndex.open(tmp_path, SPEC, cfg())) == N - 99


def test_crash_mid_checkpoint_leaves_the_old_checkpoint(tmp_path):
    space = populated(tmp_path)
    expected, _ = space.search(QUERIES, K)
    space.close()
    # simulate an interrupted checkpoint: a half-written next generation and manifest temp
    (tmp_path / "ckpt-000002").mkdir()
    (tmp_path / "ckpt-000002" / "faiss.index").write_bytes(b"partial")
    (tmp_path / (MANIFEST + ".tmp")).write_text("{")
    (tmp_path / "originals-000009.f32").write_bytes(b"\0" * 100)
    again = SpaceIndex.open(tmp_path, SPEC, cfg())
    assert again.applied_lsn == 7
    assert np.array_equal(again.search(QUERIES, K)[0].keys, expected.keys)
    names = {p.name for p in tmp_path.iterdir()}
    assert "ckpt-000002" not in names and MANIFEST + ".tmp" not in names
    assert "originals-000009.f32" not in names


def _flip(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _engine_file(d):
    ckpt = next(p for p in d.iterdir() if p.name.startswith("ckpt-"))
    return next(p for p in ckpt.iterdir() if not p.name.startswith("originals"))


@pytest.mark.parametrize(
    "damage",
    [
        "flip_engine",
        "truncate_engine",
        "delete_engine",
        "flip_originals",
        "truncate_originals",
        "delete_originals",
        "flip_rows",
        "delete_manifest",
        "flip_manifest_value",
        "truncate_manifest",
    ],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_corruption_is_detected(tmp_path, engine, damage):
    populated(tmp_path, engine).close()
    ckpt = next(p for p in tmp_path.iterdir() if p.name.startswith("ckpt-"))
    originals = next(tmp_path.glob("originals-*.f32"))
    manifest = tmp_path / MANIFEST
    if damage == "flip_engine":
        _flip(_engine_file(tmp_path))
    elif damage == "truncate_engine":
        f = _engine_file(tmp_path)
        f.write_bytes(f.read_bytes()[:-7])
    elif damage == "delete_engine":
        _engine_file(tmp_path).unlink()
    elif damage == "flip_originals":
        _flip(originals, offset=4 * DIM * 3 + 1)
    elif damage == "truncate_originals":
        originals.write_bytes(originals.read_bytes()[: -4 * DIM])
    elif damage == "delete_originals":
        originals.unlink()
    elif damage == "flip_rows":
        _flip(ckpt / "originals.rows.npy", offset=200)
    elif damage == "delete_manifest":
        manifest.unlink()
    elif damage == "flip_manifest_value":
        doc = json.loads(manifest.read_text())
        doc["body"]["applied_lsn"] = 8  # valid JSON, wrong content
        manifest.write_text(json.dumps(doc))
    elif damage == "truncate_manifest":
        manifest.write_bytes(manifest.read_bytes()[:50])
    with pytest.raises(IndexCorruptError) as info:
        SpaceIndex.open(tmp_path, SPEC, cfg(engine))
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    "change",
    [
        {"config": cfg("usearch")},
        {"config": cfg("faiss", "f16")},
        {"spec": SpaceSpec("text", "fake", "1", DIM + 1)},
        {"spec": SpaceSpec("text", "fake", "1", DIM, "l2")},
    ],
)
def test_manifest_mismatch_with_configuration(tmp_path, change):
    populated(tmp_path).close()
    with pytest.raises(IndexCorruptError, match="configured"):
        SpaceIndex.open(tmp_path, change.get("spec", SPEC), change.get("config", cfg()))


def test_reset_drops_everything(tmp_path):
    space = populated(tmp_path)
    space.reset()
    assert len(space) == 0 and space.applied_lsn == 0
    assert not (tmp_path / MANIFEST).exists()
    space.upsert(KEYS[:10], DATA[:10])
    space.checkpoint(3)
    space.close()
    again = SpaceIndex.open(tmp_path, SPEC, cfg())
    assert len(again) == 10 and again.applied_lsn == 3


def test_uncheckpointed_originals_without_manifest_start_fresh(tmp_path):
    space = SpaceIndex.open(tmp_path, SPEC, cfg())
    space.upsert(KEYS[:10], DATA[:10])  # crash before the first checkpoint
    space.close()
    again = SpaceIndex.open(tmp_path, SPEC, cfg())
    assert len(again) == 0 and again.applied_lsn == 0


def test_originals_compaction_at_checkpoint(tmp_path):
    space = populated(tmp_path, "flat", "f32")  # its removal compacted once already (erasure)
    [before] = sorted(p.name for p in tmp_path.glob("originals-*.f32"))
    for _ in range(3):  # every upsert of an existing key leaves a dead row behind
        space.upsert(KEYS[200:1200], DATA[200:1200])
    space.checkpoint(8)
    files = sorted(p.name for p in tmp_path.glob("originals-*.f32"))
    assert len(files) == 1 and files[0] != before  # compacted, and the old one is gone
    assert (tmp_path / files[0]).stat().st_size == (N - 100) * DIM * 4
    space.close()
    again = SpaceIndex.open(tmp_path, SPEC, cfg("flat", "f32"))
    np.testing.assert_allclose(again.get_vectors(KEYS[1000:1010]), DATA[1000:1010], atol=1e-6)


def test_planner_plans(tmp_path):
    space = SpaceIndex.open(tmp_path, SPEC, cfg(exact_threshold=50, exact_fraction=0.0))
    space.upsert(KEYS, DATA)
    assert space.search(QUERIES[:1], K)[1] == "ann+rescore(x3)"
    assert space.search(QUERIES[:1], K, KEYS[:50])[1] == "exact(allowed=50)"
    assert space.search(QUERIES[:1], K, KEYS[:500])[1] == "ann+filter+rescore(x3)"
    f32 = SpaceIndex.open(tmp_path / "u", SPEC, cfg("usearch", "f32", exact_threshold=50))
    f32.upsert(KEYS, DATA)
    assert f32.search(QUERIES[:1], K)[1] == "ann"
    assert f32.search(QUERIES[:1], K, KEYS[:500])[1].startswith("ann+oversample(x")
    no_rescore = SpaceIndex.open(tmp_path / "n", SPEC, cfg(oversample=1.0))
    no_rescore.upsert(KEYS, DATA)
    assert no_rescore.search(QUERIES[:1], K)[1] == "ann"


def test_filter_with_dead_keys_falls_back_to_exact(tmp_path):
    space = SpaceIndex.open(
        tmp_path, SPEC, cfg("usearch", "int8", exact_threshold=0, exact_fraction=0.0)
    )
    space.upsert(KEYS, DATA)
    allowed = np.concatenate([KEYS[:5], np.arange(10**6, 10**6 + 500)])  # mostly unknown keys
    res, plan = space.search(QUERIES[:3], K, allowed)
    assert plan == "exact(fallback)"
    assert set(res.keys[res.keys >= 0].tolist()) <= set(KEYS[:5].tolist())


def test_exact_search_is_the_oracle(tmp_path):
    space = populated(tmp_path, "faiss", "binary")
    live = np.isin(KEYS, space.keys())
    truth, scores = brute_force(DATA[live], KEYS[live], QUERIES, K)
    res = space.exact_search(QUERIES, K)
    assert np.array_equal(res.keys, truth)
    np.testing.assert_allclose(res.scores, scores, rtol=1e-5, atol=1e-6)


def test_bad_input_is_rejected(tmp_path):
    space = SpaceIndex.open(tmp_path, SPEC, cfg())
    with pytest.raises(ValueError, match="shape"):
        space.upsert(KEYS[:3], DATA[:2])
    bad = DATA[:2].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        space.upsert(KEYS[:2], bad)
    with pytest.raises(ValueError, match="shape"):
        space.search(np.zeros((1, DIM + 1), np.float32), K)
    assert len(space) == 0


def test_concurrent_searches_while_writing(tmp_path):
    space = SpaceIndex.open(tmp_path, SPEC, cfg())
    space.upsert(KEYS[:1000], DATA[:1000])
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                res, _ = space.search(QUERIES[:2], K)
                assert (res.keys[:, 0] >= 0).all()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for start in range(1000, N, 100):
        space.upsert(KEYS[start : start + 100], DATA[start : start + 100])
        space.remove(KEYS[start - 1000 : start - 950])
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    truth, _ = brute_force(DATA[np.isin(KEYS, space.keys())], space.keys(), QUERIES, K)
    assert recall(space.search(QUERIES, K)[0].keys, truth) >= 0.97


@pytest.mark.parametrize("module,extra", [("faiss", "faiss"), ("usearch.index", "usearch")])
def test_missing_extra_names_it(monkeypatch, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    backend = module.split(".")[0]
    with pytest.raises(MissingExtraError, match=rf"edgerag\[{extra}\]"):
        create_engine(DIM, "cos", cfg(backend))


def test_flat_needs_no_extras(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "faiss", None)
    monkeypatch.setitem(sys.modules, "usearch.index", None)
    space = SpaceIndex.open(tmp_path, SPEC, cfg("flat", "int8"))
    space.upsert(KEYS[:100], DATA[:100])
    assert space.search(QUERIES[:1], 1)[0].keys.shape == (1, 1)


def test_copy_of_checkpoint_opens_elsewhere(tmp_path):
    """Snapshots (fleet replica moves) are plain directory copies."""
    populated(tmp_path / "a").close()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    space = SpaceIndex.open(tmp_path / "b", SPEC, cfg())
    assert len(space) == N - 100 and space.applied_lsn == 7


@pytest.mark.parametrize("engine", ENGINES)
def test_checkpoint_of_an_empty_index_reopens(tmp_path, engine):
    space = SpaceIndex.open(tmp_path, SPEC, cfg(engine))
    space.upsert(np.empty(0, np.int64), np.empty((0, DIM), np.float32))
    space.checkpoint(4)
    space.close()
    again = SpaceIndex.open(tmp_path, SPEC, cfg(engine))
    assert again.applied_lsn == 4 and len(again) == 0
    again.upsert(KEYS[:20], DATA[:20])
    assert again.search(DATA[:1], 1)[0].keys[0, 0] == KEYS[0]


def _exact_scores(queries: np.ndarray, res) -> np.ndarray:
    """Exact cosine of each returned key, from the test's own copy of the vectors."""
    where = {int(k): i for i, k in enumerate(KEYS)}
    vecs = DATA[[[where[int(k)] for k in row] for row in res.keys]]
    return np.einsum("qd,qkd->qk", queries, vecs)


def test_rescoring_reads_a_labelled_row_only_when_it_holds_the_key(tmp_path, monkeypatch):
    space = SpaceIndex.open(tmp_path, SPEC, cfg())
    space.upsert(KEYS, DATA)
    lookups = []
    real_lookup = space._originals._map.lookup
    monkeypatch.setattr(
        space._originals._map, "lookup", lambda k: lookups.append(len(k)) or real_lookup(k)
    )
    # engine and originals appended the same upserts in the same order: every label is the
    # key's row, so rescoring needs no map lookup
    for q in QUERIES[:10]:
        res, plan = space.search(q[None, :], K)
        assert plan == "ann+rescore(x3)"
        np.testing.assert_allclose(res.scores, _exact_scores(q[None, :], res), atol=1e-5)
    assert lookups == []
    # removing 21 % compacts the engine (its labels renumber) but not the originals (their
    # dead rows stay until a checkpoint): now most labels name another key's row
    space.remove(KEYS[: int(0.21 * N)])
    lookups.clear()  # the removal's own lookups
    live = np.isin(KEYS, space.keys())
    truth, _ = brute_force(DATA[live], KEYS[live], QUERIES, K)
    res, _ = space.search(QUERIES, K)
    assert lookups, "stale labels must fall back to the key map"
    np.testing.assert_allclose(res.scores, _exact_scores(QUERIES, res), atol=1e-5)
    assert recall(res.keys, truth) >= 0.95
    for q in QUERIES[:10]:  # the single-query path too
        one, _ = space.search(q[None, :], K)
        np.testing.assert_allclose(one.scores, _exact_scores(q[None, :], one), atol=1e-5)
