"""Token-window chunking: size, overlap, page provenance, exact substrings, boundaries, speed."""

from __future__ import annotations

import bisect
import time
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgerag.errors import ConfigError
from edgerag.ingest import RegexSpans, TokenSpans, WordpieceSpans, chunk_pages
from edgerag.types import Chunk

PROSE = (
    "The KX-40 skid must be isolated before service. Close the suction valve first! "
    "Then drain the casing through the lower plug.\n\n"
    "Check the mechanical seal for weeping; replace it when leakage exceeds ten drops a minute. "
    "Torque the gland bolts in a cross pattern.\n"
)


@cache
def wordpiece() -> WordpieceSpans | None:
    try:
        return WordpieceSpans()
    except ImportError:  # MissingExtraError is an ImportError
        return None


def token_range(chunk: Chunk, tokens: list[tuple[int, int]]) -> tuple[int, int]:
    """Token indices [first, stop) a chunk covers, from its character span."""
    starts = [s for s, _ in tokens]
    first = bisect.bisect_left(starts, chunk.char_start)
    stop = bisect.bisect_left(starts, chunk.char_end)
    assert tokens[first][0] == chunk.char_start and tokens[stop - 1][1] == chunk.char_end
    return first, stop


def check_invariants(
    pages: list[tuple[int | None, str]], spans: TokenSpans, size: int, overlap: int
) -> list[Chunk]:
    chunks = chunk_pages(pages, spans, size=size, overlap=overlap)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    numbers = [number for number, _ in pages]
    assert len(set(numbers)) == len(numbers), "helper needs distinct page numbers"
    by_page: dict[int, list[Chunk]] = {}
    for chunk in chunks:
        by_page.setdefault(numbers.index(chunk.page), []).append(chunk)
    # Chunks come in page order.
    assert list(by_page) == sorted(by_page)
    for index, (_, text) in enumerate(pages):
        tokens = spans.spans(text)
        page_chunks = by_page.get(index, [])
        if not tokens:
            assert not page_chunks
            continue
        ranges = [token_range(c, tokens) for c in page_chunks]
        for chunk, (first, stop) in zip(page_chunks, ranges, strict=True):
            assert chunk.text == text[chunk.char_start : chunk.char_end]
            assert 0 < stop - first <= size
            assert chunk.metadata["tokens"] == stop - first
        # Windows cover the page's tokens, neighbours share exactly `overlap` tokens.
        assert ranges[0][0] == 0 and ranges[-1][1] == len(tokens)
        for (_, stop), (next_first, next_stop) in zip(ranges, ranges[1:], strict=False):
            assert stop - next_first == overlap
            assert next_stop > stop
    return chunks


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (-5, 0), (10, 10), (10, -1), (10, 11)])
def test_invalid_window_is_config_error(size: int, overlap: int) -> None:
    with pytest.raises(ConfigError):
        chunk_pages([(1, PROSE)], RegexSpans(), size=size, overlap=overlap)


def test_regex_spans() -> None:
    text = "Torque: 28 N·m, KX40-SC-2210."
    assert [text[s:e] for s, e in RegexSpans().spans(text)] == [
        "Torque", ":", "28", "N", "·", "m", ",", "KX40", "-", "SC", "-", "2210", ".",
    ]  # fmt: skip


def test_wordpiece_spans_skip_special_tokens() -> None:
    spans = wordpiece()
    if spans is None:
        pytest.skip("MiniLM tokenizer not installed")
    text = "  Tokenization of the gland bolts"
    pieces = [text[s:e] for s, e in spans.spans(text)]
    assert pieces == ["Token", "ization", "of", "the", "gland", "bolts"]


@pytest.mark.parametrize(("size", "overlap"), [(1, 0), (7, 3), (20, 5), (40, 0), (200, 50)])
def test_invariants_regex(size: int, overlap: int) -> None:
    pages = [(1, PROSE * 8), (2, ""), (3, "   \n"), (4, PROSE), (5, "tail")]
    chunks = check_invariants(pages, RegexSpans(), size, overlap)
    assert {c.page for c in chunks} == {1, 4, 5}


def test_invariants_wordpiece() -> None:
    spans = wordpiece()
    if spans is None:
        pytest.skip("MiniLM tokenizer not installed")
    check_invariants([(1, PROSE * 30), (2, PROSE)], spans, 200, 50)


def test_short_page_is_one_chunk_trimmed() -> None:
    (chunk,) = chunk_pages([(None, "  \n Hello, world.  \n")], RegexSpans())
    assert chunk.text == "Hello, world."
    assert (chunk.page, chunk.char_start, chunk.char_end) == (None, 4, 17)


def test_prefers_sentence_end_in_last_15_percent() -> None:
    words = " ".join(f"w{i}" for i in range(90))
    text = f"{words}. " + " ".join(f"x{i}" for i in range(200))
    # Tokens: 90 words + "." = 91; a 100-token window has its zone at tokens 85..100.
    first = chunk_pages([(1, text)], RegexSpans(), size=100, overlap=10)[0]
    assert first.text.endswith("w89.")
    # Outside the zone, the window keeps its full size.
    first = chunk_pages([(1, text)], RegexSpans(), size=200, overlap=10)[0]
    assert first.metadata["tokens"] == 200


def test_prefers_paragraph_over_sentence() -> None:
    text = " ".join(f"a{i}" for i in range(88)) + ".\n\nb c. d e f g h. " + "z " * 200
    first = chunk_pages([(1, text)], RegexSpans(), size=100, overlap=0)[0]
    assert first.text.endswith("a87.")


def test_list_marker_is_not_a_sentence_end() -> None:
    text = " ".join(f"a{i}" for i in range(86)) + ". b c\n2. " + "z " * 200
    # "a85." (token 87) and the marker "2." (token 92) both lie in the zone (85..100).
    first = chunk_pages([(1, text)], RegexSpans(), size=100, overlap=0)[0]
    assert first.text.endswith("a85.")


def test_wordpiece_does_not_stop_mid_word() -> None:
    spans = wordpiece()
    if spans is None:
        pytest.skip("MiniLM tokenizer not installed")
    text = " ".join(["tokenization"] * 300)  # 2 tokens per word: "token", "##ization"
    for chunk in chunk_pages([(1, text)], spans, size=51, overlap=10)[:-1]:
        assert chunk.text.endswith("tokenization")


def test_positions_continue_across_pages() -> None:
    pages = [(n, PROSE) for n in range(1, 6)]
    chunks = chunk_pages(pages, RegexSpans(), size=30, overlap=5)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert [c.page for c in chunks] == sorted(c.page for c in chunks)


class _Cached:
    """Tokenize once up front so the timing below measures chunking only."""

    def __init__(self, pages: list[tuple[int | None, str]]) -> None:
        regex = RegexSpans()
        self._spans = {text: regex.spans(text) for _, text in pages}

    def spans(self, text: str) -> list[tuple[int, int]]:
        return self._spans[text]


def test_300_pages_chunk_fast() -> None:
    pages: list[tuple[int | None, str]] = [(n, f"Page {n}. " + PROSE * 8) for n in range(1, 301)]
    spans = _Cached(pages)
    started = time.perf_counter()
    chunks = chunk_pages(pages, spans, size=200, overlap=50)
    elapsed = time.perf_counter() - started
    assert len(chunks) >= 300
    assert elapsed < 0.5, f"chunking 300 pages took {elapsed:.2f}s"


_ALPHABET = st.sampled_from(list("abcXYZ 0129.,;!?-'\"\n\t\u00e9\u00b7\u4e2d") + ["\n\n", ". "])
_TEXT = st.lists(_ALPHABET, max_size=400).map("".join)
# Numbered pages (PDF) or one unnumbered page (text, HTML).
_PAGES = st.one_of(
    st.lists(_TEXT, max_size=4).map(lambda texts: list(enumerate(texts, start=1))),
    _TEXT.map(lambda text: [(None, text)]),
)


@st.composite
def _window(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, 40))
    return size, draw(st.integers(0, size - 1))


@settings(max_examples=150, deadline=None)
@given(pages=_PAGES, window=_window())
def test_property_regex(pages: list[tuple[int | None, str]], window: tuple[int, int]) -> None:
    check_invariants(pages, RegexSpans(), *window)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages=_PAGES, window=_window())
def test_property_wordpiece(pages: list[tuple[int | None, str]], window: tuple[int, int]) -> None:
    spans = wordpiece()
    if spans is None:
        pytest.skip("MiniLM tokenizer not installed")
    check_invariants(pages, spans, *window)
