"""Document structure shared by the extractors and the chunker: blocks, section paths, rows.

An extractor that understands its format (Markdown, HTML, PDF) returns blocks — paragraphs,
lists, code, tables — each with the heading path above it. The chunker keeps a list, a code
block or a table row whole, and every item carries ``metadata["section"]``
(``"KX-40 O&M Manual › 11 Alarm and fault codes"``). That section is the item's *contextual
header*: it is prepended to the text that BM25 indexes and the encoder embeds (see
:func:`context_text`), while the stored ``text`` stays the clean display text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SECTION_SEP = " › "
# Units an item can be: prose windows, one table row, a whole list, a code block.
UNITS = ("text", "row", "list", "code")

_WS = re.compile(r"\s+")


@dataclass
class Block:
    """One structural block of a page.

    Attributes:
        kind: ``"text"``, ``"list"``, ``"code"``, ``"table"`` or ``"heading"`` (headings are
            part of the page text but never an item of their own: they live in ``section``).
        text: The display text; for a table, one row sentence per line (see :func:`row_text`).
        section: Heading path above the block, outermost first (document title excluded).
        page: 1-based page number, or None for formats without pages.
        headers: Column headers of a table block.
        start: Offset of ``text`` in its page's text (set by :func:`assemble_pages`).
    """

    kind: str
    text: str
    section: tuple[str, ...] = ()
    page: int | None = None
    headers: list[str] = field(default_factory=list)
    start: int = 0


def clean_cell(cell: Any) -> str:
    """A table cell as one line: whitespace collapsed, ``None`` (merged cell) empty."""
    return _WS.sub(" ", str(cell or "")).strip()


def row_text(headers: Sequence[str], cells: Sequence[str]) -> str:
    """A table row as a sentence that keeps its column headers.

    Short values read as ``"Code E-107"``, longer ones as ``"Meaning: seal flush pressure
    low"``; cells are joined by `` · ``. Without headers the cells are joined as they are.
    """
    parts = []
    for i, cell in enumerate(cells):
        value = clean_cell(cell)
        if not value:
            continue
        header = clean_cell(headers[i]) if i < len(headers) else ""
        if not header:
            parts.append(value)
        elif len(value.split()) <= 2 and len(value) <= 16:
            parts.append(f"{header} {value}")
        else:
            parts.append(f"{header}: {value}")
    return " · ".join(parts)


def table_block(
    rows: Sequence[Sequence[Any]],
    section: tuple[str, ...],
    page: int | None = None,
    has_header: bool = True,
) -> Block | None:
    """A table block from raw rows (first row = headers when ``has_header``)."""
    rows = [[clean_cell(c) for c in row] for row in rows if any(clean_cell(c) for c in row)]
    if not rows:
        return None
    headers = rows[0] if has_header and len(rows) > 1 else []
    body = rows[1:] if headers else rows
    lines = [row_text(headers, row) for row in body]
    lines = [line for line in lines if line]
    if not lines:
        return None
    return Block("table", "\n".join(lines), section, page, headers=headers)


def assemble_pages(blocks: list[Block]) -> list[tuple[int | None, str]]:
    """Join the blocks of each page into its text (blank line between blocks) and record each
    block's offset, so an item's ``text == page_text[char_start:char_end]`` still holds."""
    pages: dict[int | None, list[str]] = {}
    lengths: dict[int | None, int] = {}
    for block in blocks:
        parts = pages.setdefault(block.page, [])
        offset = lengths.get(block.page, 0)
        if parts:
            offset += 2  # the "\n\n" joining it to the previous block
        block.start = offset
        parts.append(block.text)
        lengths[block.page] = offset + len(block.text)
    return [(page, "\n\n".join(parts)) for page, parts in pages.items()]


def section_path(title: str | None, section: Sequence[str]) -> str:
    """``"Title › 1 Heading › 1.2 Sub"``; the title is not repeated when the first heading is
    the title itself (a Markdown ``# Title``)."""
    parts = [s for s in section if s]
    if title and parts and _same_heading(parts[0], title):
        parts[0] = max(parts[0], title, key=len)  # the fuller of the two names the document
    elif title:
        parts = [title, *parts]
    return SECTION_SEP.join(parts)


def context_text(text: str, metadata: Mapping[str, Any] | None) -> str:
    """What BM25 indexes and the encoder embeds: the section path, then the item's text."""
    section = (metadata or {}).get("section")
    if not section or not isinstance(section, str):
        return text
    return f"{section}: {text}"


def _same_heading(heading: str, title: str) -> bool:
    # "Service Bulletin SB-2026-03" under the <title> "Service Bulletin SB-2026-03: KX-40 …"
    a, b = _norm(heading), _norm(title)
    return a == b or b.startswith(a) or a.startswith(b)


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()
