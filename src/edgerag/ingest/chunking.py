"""Split page texts into overlapping token windows with exact character provenance.

A window is ``size`` tokens; neighbours on the same page share ``overlap`` tokens. Windows
never cross a page, and ``chunk.text`` is exactly ``page_text[char_start:char_end]`` so a
citation can highlight it in the original. When a paragraph, sentence or line ends in the last
~15% of a window, the window ends there instead, so answers are less often cut in half.

Tokens come from a :class:`TokenSpans`: the encoder's own WordPiece tokenizer by default (a
window then fits the model exactly), or a dependency-free regex fallback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from edgerag.errors import ConfigError, MissingExtraError
from edgerag.ingest.structure import Block, section_path
from edgerag.types import Chunk

logger = logging.getLogger(__name__)

BOUNDARY_ZONE = 0.15  # share of a window, at its end, searched for a better place to stop

# Cut strengths: a higher one wins anywhere in the zone; ties go to the latest cut.
_MID_WORD, _SPACE, _LINE, _SENTENCE, _PARAGRAPH = range(5)
_SENTENCE_END = re.compile(r"[.!?…][\"'’”)\]]*$")
_LIST_MARKER = re.compile(r"[ \t]*(?:\d{1,3}|[A-Za-z])[.)]")


class TokenSpans(Protocol):
    """Anything that can tell where the tokens of a text are."""

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character ``(start, end)`` of each token of ``text``, in order, never empty."""
        ...


class RegexSpans:
    """Words and single punctuation marks (``\\w+|[^\\w\\s]``); needs no dependency.

    Counts are close to, but below, WordPiece counts (rare words are one token here).
    """

    _TOKEN = re.compile(r"\w+|[^\w\s]")

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in self._TOKEN.finditer(text)]


class WordpieceSpans:
    """Token spans from the all-MiniLM-L6-v2 WordPiece tokenizer (what the text encoder sees).

    Args:
        tokenizer: A loaded ``tokenizers.Tokenizer``; loaded from ``path`` (or the installed
            MiniLM package) when omitted.
        path: ``tokenizer.json`` to load instead of the bundled one.
    """

    def __init__(self, tokenizer: Any | None = None, path: Path | None = None) -> None:
        if tokenizer is None:
            from edgerag.encoders.minilm import load_tokenizer  # pulls `tokenizers` lazily

            # No truncation: chunking must see every token of a page, not the first 256.
            tokenizer = load_tokenizer(path, max_tokens=None)
        self._tokenizer = tokenizer

    def spans(self, text: str) -> list[tuple[int, int]]:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        # Special tokens ([CLS]/[SEP]) carry (0, 0); nothing else is empty.
        return [(start, end) for start, end in encoding.offsets if end > start]


def default_spans() -> TokenSpans:
    """WordPiece spans when the tokenizer is installed, else the regex fallback."""
    try:
        return WordpieceSpans()
    except MissingExtraError as exc:
        logger.info("MiniLM tokenizer unavailable (%s); chunking on regex tokens", exc)
        return RegexSpans()


def chunk_pages(
    pages: list[tuple[int | None, str]],
    spans: TokenSpans,
    size: int = 200,
    overlap: int = 50,
) -> list[Chunk]:
    """Cut pages into overlapping token windows.

    Args:
        pages: ``(page number or None, text)`` in document order.
        spans: Tokenizer giving each token's character span.
        size: Maximum tokens per chunk.
        overlap: Tokens shared by neighbouring chunks of the same page.

    Returns:
        Chunks numbered ``0..n-1`` across the whole document; blank pages yield none.

    Raises:
        ConfigError: ``size`` is not positive or ``overlap`` is not in ``[0, size)``.
    """
    _validate(size, overlap)
    chunks: list[Chunk] = []
    for page, text in pages:
        if not text or text.isspace():
            continue
        tokens = spans.spans(text)
        for first, stop in _windows(text, tokens, size, overlap):
            start, end = tokens[first][0], tokens[stop - 1][1]
            chunks.append(
                Chunk(
                    text=text[start:end],
                    position=len(chunks),
                    page=page,
                    char_start=start,
                    char_end=end,
                    metadata={"tokens": stop - first},
                )
            )
    return chunks


def _validate(size: int, overlap: int) -> None:
    if not isinstance(size, int) or size <= 0:
        raise ConfigError(f"chunk size must be a positive number of tokens, got {size!r}")
    if not isinstance(overlap, int) or not 0 <= overlap < size:
        raise ConfigError(f"chunk overlap must be in [0, size={size}), got {overlap!r}")


def _windows(
    text: str, tokens: list[tuple[int, int]], size: int, overlap: int
) -> Iterator[tuple[int, int]]:
    """Token index ranges ``[first, stop)`` of the windows of one page."""
    n = len(tokens)
    zone = max(1, int(size * BOUNDARY_ZONE))
    first = 0
    while first < n:
        stop = min(first + size, n)
        if stop < n:
            # Never cut at or before first + overlap: the next window must start later.
            stop = _best_cut(text, tokens, max(stop - zone, first + overlap + 1), stop)
        yield first, stop
        if stop >= n:
            return
        first = stop - overlap


def _best_cut(text: str, tokens: list[tuple[int, int]], low: int, high: int) -> int:
    """The cut in ``[low, high]`` (window = tokens before it) at the strongest boundary."""
    best, best_strength = high, -1
    for cut in range(high, low - 1, -1):  # latest first, so ties keep the longer window
        strength = _strength(text, tokens, cut)
        if strength > best_strength:
            best, best_strength = cut, strength
            if strength == _PARAGRAPH:
                break
    return best


def _strength(text: str, tokens: list[tuple[int, int]], cut: int) -> int:
    prev_end = tokens[cut - 1][1]
    gap = text[prev_end : tokens[cut][0]]
    if not gap:
        return _MID_WORD  # e.g. "token|##izer" or "word|," — never a good place to stop
    newlines = gap.count("\n")
    if newlines >= 2:
        return _PARAGRAPH
    if _SENTENCE_END.search(text[max(0, prev_end - 4) : prev_end]) and not _list_marker(
        text, prev_end
    ):
        return _SENTENCE
    return _LINE if newlines else _SPACE


def _list_marker(text: str, end: int) -> bool:
    """True when the line holding ``end`` is only a list marker so far ("2.", "b)")."""
    window = max(0, end - 12)
    newline = text.rfind("\n", window, end)
    if newline < 0 and window > 0:
        return False  # more than 12 characters since the line began: not a bare marker
    return _LIST_MARKER.fullmatch(text, newline + 1, end) is not None


def chunk_blocks(
    blocks: list[Block],
    pages: list[tuple[int | None, str]],
    title: str | None,
    spans: TokenSpans,
    size: int = 200,
    overlap: int = 50,
) -> list[Chunk]:
    """Chunk structured blocks: prose in token windows per section, a list or code block whole
    (windowed only when over ``size``), every table row its own item.

    The section path (:func:`~edgerag.ingest.structure.section_path`) is counted against
    ``size``, because it is prepended to the text that is embedded and indexed; a chunk's own
    text stays ``page_text[char_start:char_end]``.
    """
    _validate(size, overlap)
    page_texts = dict(pages)
    chunks: list[Chunk] = []
    for group in _groups(blocks):
        first = group[0]
        page_text = page_texts[first.page]
        section = section_path(title, first.section)
        budget = _budget(spans, section, size)
        meta: dict[str, Any] = {"section": section} if section else {}
        if first.kind == "table":
            lines = _lines(first.text, first.start)
            for start, end in lines:
                row_meta = {**meta, "unit": "row", "headers": list(first.headers)}
                chunks.extend(
                    _windowed(
                        page_text,
                        start,
                        end,
                        first.page,
                        spans,
                        budget,
                        overlap,
                        row_meta,
                        len(chunks),
                    )
                )
            continue
        start = first.start
        end = group[-1].start + len(group[-1].text)
        unit = "text" if first.kind == "text" else first.kind
        chunks.extend(
            _windowed(
                page_text,
                start,
                end,
                first.page,
                spans,
                budget,
                overlap,
                {**meta, "unit": unit},
                len(chunks),
            )
        )
    return chunks


def _groups(blocks: list[Block]) -> Iterator[list[Block]]:
    """Consecutive prose blocks of one page and section form one group; every list, code
    block or table is a group of its own; headings are left out (they are the section)."""
    group: list[Block] = []
    for block in blocks:
        if block.kind == "heading" or not block.text.strip():
            if group:
                yield group
                group = []
            continue
        if block.kind != "text":
            if group:
                yield group
                group = []
            yield [block]
            continue
        if group and (group[0].page, group[0].section) != (block.page, block.section):
            yield group
            group = []
        group.append(block)
    if group:
        yield group


def _budget(spans: TokenSpans, section: str, size: int) -> int:
    """Tokens left for the text once the contextual header (``section: ``) is counted; the
    header never takes more than half a window."""
    if not section:
        return size
    header = len(spans.spans(f"{section}: "))
    return max(size // 2, size - header)


def _lines(text: str, offset: int) -> list[tuple[int, int]]:
    out, pos = [], 0
    for line in text.split("\n"):
        if line.strip():
            out.append((offset + pos, offset + pos + len(line)))
        pos += len(line) + 1
    return out


def _windowed(
    page_text: str,
    start: int,
    end: int,
    page: int | None,
    spans: TokenSpans,
    size: int,
    overlap: int,
    metadata: dict[str, Any],
    position: int,
) -> list[Chunk]:
    segment = page_text[start:end]
    tokens = spans.spans(segment)
    if not tokens:
        return []
    overlap = min(overlap, size - 1)
    out = []
    for first, stop in _windows(segment, tokens, size, overlap):
        a, b = start + tokens[first][0], start + tokens[stop - 1][1]
        out.append(
            Chunk(
                text=page_text[a:b],
                position=position + len(out),
                page=page,
                char_start=a,
                char_end=b,
                metadata={"tokens": stop - first, **metadata},
            )
        )
    return out
