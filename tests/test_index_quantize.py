"""Codec properties: roundtrip error bounds, score consistency, binary packing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgerag.errors import ConfigError
from edgerag.index.quantize import BinaryCodec, F16Codec, Int8Codec, get_codec, hamming_to_score

finite = st.floats(-4.0, 4.0, allow_nan=False, allow_infinity=False, width=32)


def matrices(max_rows: int = 20, max_dim: int = 40):
    return st.tuples(st.integers(1, max_rows), st.integers(1, max_dim)).flatmap(
        lambda shape: arrays(np.float32, shape, elements=finite)
    )


@settings(max_examples=60, deadline=None)
@given(matrices())
def test_f16_roundtrip_within_bound(x):
    codec = F16Codec(x.shape[1])
    err = np.abs(codec.decode(codec.encode(x)) - x)
    assert np.all(err <= codec.max_abs_error(x))


@settings(max_examples=60, deadline=None)
@given(matrices())
def test_int8_roundtrip_within_half_step_on_training_data(x):
    codec = Int8Codec(x.shape[1])
    codec.train(x)
    err = np.abs(codec.decode(codec.encode(x)) - x)
    assert np.all(err <= codec.max_abs_error(x))
    assert codec.step is not None
    assert np.all(err <= codec.step * 0.5 + 1e-5)


@settings(max_examples=40, deadline=None)
@given(matrices(), matrices())
def test_int8_out_of_range_error_is_bounded_by_clipping(train, other):
    if train.shape[1] != other.shape[1]:
        other = np.resize(other, (other.shape[0], train.shape[1])).astype(np.float32)
    codec = Int8Codec(train.shape[1])
    codec.train(train)
    err = np.abs(codec.decode(codec.encode(other)) - other)
    assert np.all(err <= codec.max_abs_error(other))


@settings(max_examples=40, deadline=None)
@given(matrices(max_rows=8), matrices(max_rows=8))
def test_int8_scores_match_decoded_dot_products(x, q):
    q = np.resize(q, (q.shape[0], x.shape[1])).astype(np.float32)
    codec = Int8Codec(x.shape[1])
    codes = codec.encode(x)  # trains on first use
    expected = q @ codec.decode(codes).T
    np.testing.assert_allclose(codec.scores(q, codes, "ip"), expected, rtol=1e-4, atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(matrices())
def test_binary_keeps_signs_and_hamming_matches_sign_agreement(x):
    dim = x.shape[1]
    codec = BinaryCodec(dim)
    codes = codec.encode(x)
    assert codes.shape == (len(x), (dim + 7) // 8)
    assert np.array_equal(codec.decode(codes) > 0, x > 0)
    ham = codec.hamming(codes, codes)
    assert np.all(np.diag(ham) == 0)
    expected = ((x[:, None, :] > 0) != (x[None, :, :] > 0)).sum(-1)
    assert np.array_equal(ham, expected)
    assert np.all(np.abs(codec.decode(codes) - x) <= codec.max_abs_error(x))


def test_hamming_to_score_is_cosine_of_sign_vectors():
    assert hamming_to_score(np.array([0]), 64)[0] == 1.0
    assert hamming_to_score(np.array([64]), 64)[0] == -1.0
    assert hamming_to_score(np.array([32]), 64)[0] == 0.0


def test_unknown_quantization_lists_choices():
    with pytest.raises(ConfigError, match="int8"):
        get_codec("pq", 8)


@pytest.mark.parametrize("name,bpv", [("f32", 256), ("f16", 128), ("int8", 64), ("binary", 8)])
def test_bytes_per_vector(name, bpv):
    assert get_codec(name, 64).bytes_per_vector() == bpv


def test_int8_state_roundtrip():
    x = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    a = Int8Codec(16)
    a.train(x)
    b = Int8Codec(16)
    b.set_state(a.state())
    assert np.array_equal(a.encode(x), b.encode(x))
