"""PDF pages as structured blocks: pdfium text lines, headings by font size, pdfplumber tables.

pdfium (pypdfium2) gives each page's text with correct word spaces and each character's font
size and box. A line set in a clearly larger size than the body text is a heading; heading
sizes, largest first, give the section levels. Pages that draw path objects (cell rules) are
given to pdfplumber's table finder (the slow part, ~0.3 s a page, so only those pages); lines
inside a found table are replaced by the table's rows.
"""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from edgerag._optional import available, require
from edgerag.errors import InputError
from edgerag.ingest.extract import check_text_limit
from edgerag.ingest.extract.pdf import (
    RUNNING_EDGE,
    RUNNING_MIN_PAGES,
    RUNNING_SHARE,
    _mask,
    clean_pdf_text,
)
from edgerag.ingest.limits import Limits
from edgerag.ingest.structure import Block, table_block

logger = logging.getLogger(__name__)

HEADING_MIN_STEP = 0.75  # points above the body size for a line to be a heading
HEADING_MAX_CHARS = 90
TABLE_MIN_PATHS = 4  # path objects on a page before pdfplumber is asked for tables
_HAS_LETTER = re.compile(r"[^\W\d_]")


@dataclass
class _Line:
    text: str
    size: float
    top: float  # distance from the top of the page, points
    table: int = -1  # index of the table on the page holding this line, -1 for none


@dataclass
class _Page:
    number: int
    lines: list[_Line]
    tables: list[list[list[Any]]]


def read_structured(
    source: str, data: bytes, count: int, limits: Limits
) -> tuple[list[Block], int]:
    """Blocks of every page (headings, prose, table rows) and the number of failed pages."""
    pdfium = require("pypdfium2")
    try:
        document = pdfium.PdfDocument(data)
    except Exception as exc:  # PdfiumError, or a password pypdf could handle and pdfium not
        raise InputError(source, f"corrupt PDF: pdfium cannot open it ({exc})") from exc
    plumber = _Plumber(data)
    pages: list[_Page] = []
    failed = chars = 0
    try:
        for number in range(1, min(count, len(document)) + 1):
            try:
                page = _read_page(document, number, plumber)
            except Exception as exc:  # noqa: BLE001 -- one bad page must not lose the manual
                logger.warning("%s: page %d: text extraction failed: %s", source, number, exc)
                page, failed = _Page(number, [], []), failed + 1
            chars += sum(len(line.text) for line in page.lines)
            check_text_limit(source, chars, limits)
            pages.append(page)
    finally:
        plumber.close()
        document.close()
    _drop_running_lines(pages)
    return _blocks(pages), failed


def _read_page(document: Any, number: int, plumber: _Plumber) -> _Page:
    import pypdfium2.raw as raw

    page = document[number - 1]
    try:
        height = page.get_height()
        textpage = page.get_textpage()
        text = textpage.get_text_range()
        lines: list[_Line] = []
        start = 0
        for i, ch in enumerate(text + "\n"):
            if ch not in "\r\n":
                continue
            if text[start:i].strip():
                first = start + len(text[start:i]) - len(text[start:i].lstrip())
                size = raw.FPDFText_GetFontSize(textpage.raw, first)
                top = height - textpage.get_charbox(first)[3]
                lines.append(_Line(text[start:i].strip(), round(size * 2) / 2, top))
            start = i + 1
        tables: list[list[list[Any]]] = []
        if _path_count(page, raw) >= TABLE_MIN_PATHS:
            for bbox, rows in plumber.tables(number - 1):
                _, top, _, bottom = bbox
                inside = [ln for ln in lines if top - 1 <= ln.top + 2 <= bottom + 1]
                if not inside:
                    continue
                for line in inside:
                    line.table = len(tables)
                tables.append(rows)
        textpage.close()
        return _Page(number, lines, tables)
    finally:
        page.close()


def _path_count(page: Any, raw: Any) -> int:
    return sum(1 for _ in page.get_objects(filter=[raw.FPDF_PAGEOBJ_PATH], max_depth=2))


class _Plumber:
    """pdfplumber opened once per file, on first need (only pages with rules ask)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pdf: Any = None

    def tables(self, index: int) -> list[tuple[tuple[float, float, float, float], list[Any]]]:
        if not available("pdfplumber"):
            return []
        if self._pdf is None:
            self._pdf = require("pdfplumber").open(io.BytesIO(self._data))
        found = []
        for table in self._pdf.pages[index].find_tables():
            rows = table.extract()
            if len(rows) >= 2 and max(len(r) for r in rows) >= 2:
                found.append((table.bbox, rows))
        return found

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()


def _drop_running_lines(pages: list[_Page]) -> None:
    """Remove running headers/footers: edge lines repeated (digits masked) on most pages."""
    with_text = [p for p in pages if p.lines]
    if len(with_text) < RUNNING_MIN_PAGES:
        return
    counts: Counter[str] = Counter()
    for page in with_text:
        edge = page.lines[:RUNNING_EDGE] + page.lines[-RUNNING_EDGE:]
        counts.update({_mask(line.text) for line in edge})
    running = {k for k, n in counts.items() if k and n >= RUNNING_SHARE * len(with_text)}
    for page in with_text:
        n = len(page.lines)
        page.lines = [
            line
            for i, line in enumerate(page.lines)
            if not ((i < RUNNING_EDGE or i >= n - RUNNING_EDGE) and _mask(line.text) in running)
        ]


def _blocks(pages: list[_Page]) -> list[Block]:
    body = _body_size(pages)
    levels = _heading_levels(pages, body)
    headings: list[tuple[int, str]] = []
    blocks: list[Block] = []
    for page in pages:
        prose: list[str] = []
        emitted: set[int] = set()

        def flush(page: _Page = page, prose: list[str] = prose) -> None:
            text = clean_pdf_text("\n".join(prose))
            prose.clear()
            if text.strip():
                blocks.append(Block("text", text, tuple(h for _, h in headings), page.number))

        lines = page.lines
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.table >= 0:
                if line.table not in emitted:
                    flush()
                    emitted.add(line.table)
                    section = tuple(h for _, h in headings)
                    block = table_block(page.tables[line.table], section, page.number)
                    if block is not None:
                        blocks.append(block)
            elif line.size in levels and _heading_like(line.text):
                flush()
                text = line.text
                while (
                    i + 1 < len(lines)
                    and lines[i + 1].size == line.size
                    and (lines[i + 1].table < 0 and _heading_like(text + " " + lines[i + 1].text))
                ):
                    i += 1
                    text += " " + lines[i].text
                level = levels[line.size]
                headings[:] = [h for h in headings if h[0] < level]
                blocks.append(Block("heading", text, tuple(h for _, h in headings), page.number))
                headings.append((level, text))
            else:
                prose.append(line.text)
            i += 1
        flush()
    return blocks


def _body_size(pages: list[_Page]) -> float:
    weights: Counter[float] = Counter()
    for page in pages:
        for line in page.lines:
            if line.table < 0:
                weights[line.size] += len(line.text)
    return weights.most_common(1)[0][0] if weights else 0.0


def _heading_levels(pages: list[_Page], body: float) -> dict[float, int]:
    """Font sizes used for headings, largest first → level 1, 2, ...

    A size counts only if its lines are short and few: a size that sets much of the text is a
    second body size (notes, captions), not a heading.
    """
    sizes: Counter[float] = Counter()
    chars: Counter[float] = Counter()
    total = 0
    for page in pages:
        for line in page.lines:
            total += len(line.text)
            if line.size >= body + HEADING_MIN_STEP and line.table < 0:
                sizes[line.size] += 1
                chars[line.size] += len(line.text)
    heading_sizes = [s for s in sizes if chars[s] <= 0.15 * total]
    return {size: level for level, size in enumerate(sorted(heading_sizes, reverse=True), 1)}


def _heading_like(text: str) -> bool:
    return (
        len(text) <= HEADING_MAX_CHARS
        and _HAS_LETTER.search(text) is not None
        and not text.rstrip().endswith((".", ",", ";"))
    )
