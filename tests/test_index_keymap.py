"""KeyMap (key → row) against a dict, through dense, sparse and hashed keys and every mutation."""

from __future__ import annotations

import numpy as np
import pytest

from edgerag.index._util import DENSE_MAX_SPREAD, KeyMap


def _check(keymap: KeyMap, oracle: dict[int, int], rng: np.random.Generator) -> None:
    known = np.array(sorted(oracle), dtype=np.int64)
    probe = np.concatenate(
        [known, rng.integers(-5, (known.max() if len(known) else 10) + 50, 200), [-1]]
    ).astype(np.int64)
    rng.shuffle(probe)
    expected = np.array([oracle.get(int(k), -1) for k in probe], dtype=np.int64)
    got = keymap.lookup(probe)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(keymap.keys(), known)


@pytest.mark.parametrize("spread", [1, 3, 50], ids=["dense", "holes", "sparse"])
def test_keymap_matches_a_dict_through_inserts_deletes_and_rebuilds(spread: int) -> None:
    rng = np.random.default_rng(spread)
    keymap, oracle = KeyMap(), {}
    next_key, next_row = 1, 0
    for step in range(60):
        action = rng.choice(["insert", "insert", "delete", "rebuild"]) if step else "insert"
        if action == "insert":  # new keys above the others, as SQLite row ids arrive
            count = int(rng.integers(1, 40))
            keys = next_key + np.cumsum(rng.integers(1, spread + 1, count))
            next_key = int(keys[-1])
            rows = np.arange(next_row, next_row + count)
            next_row += count
            order = rng.permutation(count)  # callers may pass them unsorted
            keymap.insert(keys[order], rows[order])
            oracle.update(zip(keys.tolist(), rows.tolist(), strict=True))
        elif action == "delete" and oracle:
            gone = rng.choice(sorted(oracle), size=min(len(oracle), 7), replace=False)
            absent = [next_key + 1000]  # deleting an absent key is a no-op
            rows = keymap.delete(np.concatenate([gone, absent]))
            assert sorted(rows.tolist()) == sorted(oracle.pop(int(k)) for k in gone)
        else:  # row → key array, as a checkpoint load rebuilds it
            row_keys = np.full(next_row, -1, dtype=np.int64)
            for key, row in oracle.items():
                row_keys[row] = key
            keymap.rebuild(row_keys)
        _check(keymap, oracle, rng)
    dense = keymap._direct()
    assert (dense is not None) == (spread < DENSE_MAX_SPREAD)


def test_keymap_key_below_the_base_and_empty() -> None:
    keymap = KeyMap()
    assert keymap.lookup([1, 2]).tolist() == [-1, -1]
    keymap.insert([100, 101, 102], [0, 1, 2])
    assert keymap.lookup([101]).tolist() == [1]  # the direct array is built here
    keymap.insert([5], [3])  # below its base: decided again on the next lookup
    assert keymap.lookup([5, 100, 102, 6, 103]).tolist() == [3, 0, 2, -1, -1]
    keymap.delete([5, 100, 101, 102])
    assert keymap.lookup([5, 100]).tolist() == [-1, -1]


def test_hashed_keys_match_a_dict_through_every_mutation() -> None:
    """Item keys as engines make them (63-bit hashes, arriving in any order)."""
    rng = np.random.default_rng(7)
    keymap, oracle = KeyMap(), {}
    next_row = 0
    for step in range(60):
        action = rng.choice(["insert", "insert", "delete", "rebuild"]) if step else "insert"
        if action == "insert":
            count = int(rng.integers(1, 400))
            keys = np.unique(rng.integers(0, 2**63 - 1, count, dtype=np.int64))
            keys = keys[~np.isin(keys, list(oracle))]
            rows = np.arange(next_row, next_row + len(keys))
            next_row += len(keys)
            keymap.insert(keys, rows)
            oracle.update(zip(keys.tolist(), rows.tolist(), strict=True))
        elif action == "delete" and oracle:
            gone = rng.choice(sorted(oracle), size=min(len(oracle), 50), replace=False)
            keymap.delete(gone)
            for k in gone:
                del oracle[int(k)]
        else:  # compacted: fewer keys, renumbered rows
            for k in rng.choice(sorted(oracle), size=min(len(oracle), 10), replace=False):
                del oracle[int(k)]
            oracle = {k: row for row, k in enumerate(rng.permutation(sorted(oracle)).tolist())}
            next_row = len(oracle)
            row_keys = np.full(next_row, -1, dtype=np.int64)
            for key, row in oracle.items():
                row_keys[row] = key
            keymap.rebuild(row_keys)
        known = np.array(sorted(oracle), dtype=np.int64)
        absent = rng.integers(-(2**62), 2**63 - 1, 300, dtype=np.int64)
        probe = np.concatenate([known, absent, known[:5] + 1, known[:5] - 1, [0, 2**63 - 1]])
        rng.shuffle(probe)
        expected = [oracle.get(int(k), -1) for k in probe]
        assert keymap.lookup(probe).tolist() == expected
        assert keymap.lookup(probe.reshape(-1, 1))[:, 0].tolist() == expected  # any shape
    assert keymap._direct() is None  # sparse: binary search


def test_negative_keys() -> None:
    keymap = KeyMap()
    keymap.insert([-(2**40), 5, 2**50], [0, 1, 2])
    assert keymap.lookup([5, -(2**40), 7]).tolist() == [1, 0, -1]
