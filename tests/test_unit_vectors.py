"""Answer-unit vectors computed at ingest: spans, int8 storage, the op wire form, the store's
life cycle (written with the item, deleted with it, carried to a replica) and the composer
reading them instead of encoding."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conftest import FAST
from edgerag import Engine
from edgerag.encoders.fake import HashEncoder
from edgerag.generation.extractive import ExtractiveGenerator
from edgerag.generation.unit_vectors import (
    align,
    checksum,
    dequantize,
    encode_items,
    item_units,
    quantize,
)
from edgerag.store.ops import ItemRecord, Op

MANUAL = (
    "# Strainer\n\n"
    "Clean the suction strainer basket every month. The basket sits under the cover on the "
    "pump inlet.\n\n"
    "| Code | Meaning | Action |\n|---|---|---|\n"
    "| E-107 | Seal flush pressure low | Check valve V-05 is open |\n"
    "| E-114 | Bearing temperature high | Regrease the pump bearings |\n"
)


def _item(text: str, key: int = 7, **meta: Any) -> ItemRecord:
    return ItemRecord(key, f"d#{key}", 0, "text", text, page=1, char_start=0, metadata=meta)


def test_units_align_to_their_characters_rows_included() -> None:
    found = item_units(_item(MANUAL))
    spans = align(found, MANUAL)
    assert [u.kind for u in found] == ["sentence", "sentence", "row", "row"]
    assert None not in spans
    texts = [MANUAL[a:b] for a, b in spans]  # type: ignore[misc]
    assert texts[0] == "Clean the suction strainer basket every month"
    # a row's unit text has its headers ("Code: E-107; Meaning: …"); its span is the row
    assert texts[2].startswith("E-107") and texts[2].endswith("V-05 is open")
    assert texts[3].startswith("E-114") and "Regrease" in texts[3]


def test_late_vectors_of_an_encoder_without_token_states_are_its_span_encodes() -> None:
    encoder = HashEncoder(dim=64)
    item = _item(MANUAL, section="KX-40 manual")
    embedded = f"KX-40 manual: {MANUAL}"
    vectors, units = encode_items(encoder, [item], [embedded], "late")
    np.testing.assert_allclose(vectors, encoder.encode([embedded]), atol=1e-6)
    assert units is not None and len(units) == 4
    spans = align(item_units(item), MANUAL)
    shift = len("KX-40 manual: ")
    expected = encoder.encode([embedded[a + shift : b + shift] for a, b in spans])  # type: ignore[misc]
    got = np.stack([dequantize(c, s) for c, s in zip(units.codes, units.scales, strict=True)])
    np.testing.assert_allclose(got, expected, atol=0.02)  # int8: one step is peak / 127
    assert list(units.checks) == [checksum(u.text) for u in item_units(item)]


def test_separate_and_off_modes() -> None:
    encoder = HashEncoder(dim=64)
    item = _item(MANUAL)
    _, units = encode_items(encoder, [item], [MANUAL], "separate")
    assert units is not None
    texts = [u.text for u in item_units(item)]
    got = units.codes.astype(np.float32) * units.scales[:, None]
    np.testing.assert_allclose(got, encoder.encode(texts), atol=0.02)
    assert encode_items(encoder, [item], [MANUAL], "off")[1] is None
    with pytest.raises(ValueError, match="unit-vector mode"):
        encode_items(encoder, [item], [MANUAL], "sideways")


def test_int8_roundtrip_error_is_bounded() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    codes, scales = quantize(vectors)
    assert codes.dtype == np.int8
    back = codes.astype(np.float32) * scales[:, None]
    assert np.abs(back - vectors).max() <= scales.max() / 2 + 1e-7
    cos = (back * vectors).sum(axis=1) / np.linalg.norm(back, axis=1)
    assert cos.min() > 0.999


def test_op_wire_form_carries_unit_vectors_and_reads_old_ops(engine: Engine) -> None:
    engine.ingest([("manual.md", MANUAL.encode())])
    op = engine.store.materialize("manual.md")
    assert op.units is not None and len(op.units) == 4
    back = Op.from_bytes(op.to_bytes())
    assert back.units is not None
    for name in ("keys", "positions", "checks", "scales", "codes"):
        np.testing.assert_array_equal(getattr(back.units, name), getattr(op.units, name))
    op.units = None  # an op from a node before unit vectors
    assert Op.from_bytes(op.to_bytes()).units is None


def _unit_rows(engine: Engine) -> int:
    return int(engine.store._reader.execute("SELECT COUNT(*) FROM unit_vectors").fetchone()[0])


def test_written_replaced_and_deleted_with_the_items(engine: Engine) -> None:
    engine.ingest([("manual.md", MANUAL.encode())])
    assert _unit_rows(engine) == 4
    keys = engine.store.doc_keys("manual.md")
    stored = engine.store.unit_vectors(keys, engine.encoder.id, engine.encoder.version)
    assert len(stored) == 4
    assert engine.store.unit_vectors(keys, "another-encoder") == {}
    engine.ingest([("manual.md", (MANUAL + "\nDrain the casing before work starts.\n").encode())])
    assert _unit_rows(engine) == 5
    engine.delete("manual.md")
    assert _unit_rows(engine) == 0


def test_a_replica_applying_the_op_gets_the_same_unit_vectors(engine: Engine) -> None:
    engine.ingest([("manual.md", MANUAL.encode())])
    wire = engine.store.materialize("manual.md").to_bytes()
    with Engine.open(":memory:", FAST) as replica:
        replica.apply(Op.from_bytes(wire))
        keys = engine.store.doc_keys("manual.md")
        ours, theirs = engine.store.unit_vectors(keys), replica.store.unit_vectors(keys)
        assert ours.keys() == theirs.keys() and len(ours) == 4
        for kp, (check, vector) in ours.items():
            assert theirs[kp][0] == check
            np.testing.assert_array_equal(theirs[kp][1], vector)


class CountingEncoder:
    """Wraps an encoder and counts the texts it was asked to encode."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.texts = inner, 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.texts += len(texts)
        return self.inner.encode(texts)


def test_the_composer_reads_stored_vectors_and_encodes_only_what_has_none(
    engine: Engine,
) -> None:
    engine.ingest([("manual.md", MANUAL.encode())])
    question = "How often should the suction strainer basket be cleaned?"
    hits = engine.search(question, k=3).hits
    qvec = engine.encoder.encode([question])[0]
    enc = engine.encoder
    lookup = lambda keys: engine.store.unit_vectors(keys, enc.id, enc.version)  # noqa: E731
    counting = CountingEncoder(enc)
    composer = ExtractiveGenerator()
    with_stored = composer.ranked(question, hits, counting, qvec, lookup)
    assert counting.texts == 0 and with_stored
    encoded = composer.ranked(question, hits, counting, qvec)
    assert counting.texts == len(encoded)
    # the support test knows which cosines came from stored (late) vectors
    assert all(c.stored for c in with_stored) and not any(c.stored for c in encoded)
    # the stored vectors are the same units' (int8): same cosines up to quantization
    by_text = {c.text: c.cosine for c in encoded}
    for cand in with_stored:
        assert cand.cosine == pytest.approx(by_text[cand.text], abs=0.02)
    # a stored vector whose unit text changed (checksum differs) is not used
    stale = lambda keys: {kp: (c + 1, v) for kp, (c, v) in lookup(keys).items()}  # noqa: E731
    counting.texts = 0
    composer.ranked(question, hits, counting, qvec, stale)
    assert counting.texts == len(with_stored)


def test_check_reports_missing_unit_vectors_and_repair_recomputes(tmp_path) -> None:
    from edgerag.check import check_collection

    path = tmp_path / "c"
    with Engine.open(path, FAST) as eng:
        eng.ingest([("manual.md", MANUAL.encode()), ("b.md", b"# B\n\nDrain the casing first.\n")])
        keys = eng.store.doc_keys("manual.md")
        before = eng.store.unit_vectors(keys)
    assert check_collection(path).ok
    with Engine.open(path, FAST) as eng:  # lose two of them (a replica of an old node's ops)
        with eng.store._write_lock:
            eng.store._writer.execute(
                "DELETE FROM unit_vectors WHERE (key, position) IN"
                " (SELECT key, position FROM unit_vectors LIMIT 2)"
            )
    report = check_collection(path)
    assert not report.ok and "unit vectors: 2 missing" in " ".join(report.problems)
    report = check_collection(path, repair=True)
    assert report.ok and report.repaired
    with Engine.open(path, FAST) as eng:
        after = eng.store.unit_vectors(keys)
    assert after.keys() == before.keys()
    for kp, (check, vector) in before.items():
        assert after[kp][0] == check
        np.testing.assert_allclose(after[kp][1], vector, atol=1e-6)
