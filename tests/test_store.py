"""Store round-trips (hypothesis) and the op wire format."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgerag.store.ops import DELETE, UPSERT, DocumentRecord, ItemRecord, Op, SpaceVectors
from edgerag.store.sqlite import Store
from edgerag.types import SpaceSpec, item_key

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
)
metadata = st.dictionaries(
    st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8),
    st.one_of(json_scalars, st.lists(st.text(max_size=8), max_size=3)),
    max_size=4,
)


def _op(doc_id: str, texts: list[str], meta: dict, dim: int = 8) -> Op:
    items = [
        ItemRecord(
            key=item_key(doc_id, i),
            item_id=f"{doc_id}#{i}",
            position=i,
            modality="text",
            text=t,
            page=i + 1,
            char_start=0,
            char_end=len(t),
            metadata={"n": i},
        )
        for i, t in enumerate(texts)
    ]
    rng = np.random.default_rng(len(texts))
    vecs = rng.standard_normal((len(texts), dim)).astype(np.float32)
    keys = np.array([it.key for it in items], dtype=np.int64)
    return Op(
        kind=UPSERT,
        doc_id=doc_id,
        document=DocumentRecord(
            doc_id=doc_id,
            source=f"/x/{doc_id}",
            modality="text",
            mime="text/plain",
            content_hash="h",
            size=1,
            metadata=meta,
        ),
        items=items,
        vectors={"text": SpaceVectors("enc", "1", keys, vecs)},
    )


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    doc_id=st.text(min_size=1, max_size=30),
    texts=st.lists(st.text(max_size=200), min_size=1, max_size=5),
    meta=metadata,
)
def test_upsert_materialize_roundtrip(doc_id, texts, meta):
    store = Store(None)
    store.put_space(SpaceSpec("text", "enc", "1", 8))
    op = _op(doc_id, texts, meta)
    lsn = store.apply(op)
    assert lsn == store.last_lsn() == 1
    back = store.materialize(doc_id)
    assert back.document.metadata == meta
    assert [i.text for i in back.items] == texts
    np.testing.assert_array_equal(back.vectors["text"].vectors, op.vectors["text"].vectors)
    assert sorted(store.keys_touched_since(0)) == sorted(i.key for i in op.items)
    store.close()


@settings(max_examples=60, deadline=None)
@given(
    doc_id=st.text(min_size=1, max_size=30),
    texts=st.lists(st.text(max_size=50), max_size=4),
    meta=metadata,
)
def test_op_wire_roundtrip(doc_id, texts, meta):
    op = _op(doc_id, texts or ["x"], meta)
    back = Op.from_bytes(op.to_bytes())
    assert back.document == op.document and back.items == op.items
    np.testing.assert_array_equal(back.vectors["text"].keys, op.vectors["text"].keys)
    np.testing.assert_array_equal(back.vectors["text"].vectors, op.vectors["text"].vectors)


def test_replace_and_delete_keep_log_and_rows_in_step():
    store = Store(None)
    store.put_space(SpaceSpec("text", "enc", "1", 8))
    store.apply(_op("d", ["a", "b", "c"], {}))
    store.apply(_op("d", ["a2"], {}))  # shorter: positions 1 and 2 go away
    assert store.doc_keys("d") == [item_key("d", 0)]
    assert len(store.keys_touched_since(1)) == 3  # 0 replaced, 1 and 2 removed
    store.apply(Op(kind=DELETE, doc_id="d"))
    assert store.document("d") is None and store.count_items() == {}
    assert store.bm25('"a2"', 5) == []
    assert [r["kind"] for r in store.oplog()] == [UPSERT, UPSERT, DELETE]
    assert store.materialize("d").kind == DELETE


def test_failed_apply_writes_nothing():
    store = Store(None)
    op = _op("d", ["a"], {})
    op.document = None  # invalid: an upsert must carry its document
    try:
        store.apply(op)
    except ValueError:
        pass
    assert store.last_lsn() == 0 and store.count_items() == {}


def test_apply_many_is_one_transaction():
    store = Store(None)
    store.put_space(SpaceSpec("text", "enc", "1", 8))
    good = [_op(f"d{i}", [f"text {i}"], {}) for i in range(3)]
    assert store.apply_many(good) == [1, 2, 3]
    bad = _op("broken", ["x"], {})
    bad.document = None
    try:
        store.apply_many([_op("d9", ["nine"], {}), bad])
    except ValueError:
        pass
    assert store.last_lsn() == 3 and store.document("d9") is None  # all or nothing


def test_engine_apply_many_keeps_index_in_step(engine):
    ops = [_op(f"d{i}", [f"alpha {i}", "beta"], {}, dim=engine.encoder.dim) for i in range(4)]
    lsns = engine.apply_many(ops)
    assert lsns == sorted(lsns) and engine.stats()["spaces"]["text"]["lag"] == 0
    assert len(engine.indexes["text"]) == 8
