"""HTML (.html .htm): visible text as lines, structure kept as line and paragraph breaks.

Scripts, styles, navigation and hidden elements are dropped; headings, paragraphs, list items
and table rows each become their own line, so chunking can end windows on them.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any

from edgerag._optional import require
from edgerag.errors import InputError
from edgerag.ingest.extract import Extracted
from edgerag.ingest.extract.text import decode_text, normalize_text
from edgerag.ingest.limits import Limits
from edgerag.ingest.structure import Block, assemble_pages, table_block
from edgerag.types import Modality

logger = logging.getLogger(__name__)

DROP = frozenset(
    {
        "script",
        "style",
        "nav",
        "noscript",
        "template",
        "svg",
        "canvas",
        "iframe",
        "object",
        "head",
        "title",
        "meta",
        "link",
        "button",
        "select",
        "input",
        "textarea",
    }
)
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Blocks that start a new paragraph (blank line) vs. a new line only.
PARAGRAPHS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "header",
        "footer",
        "aside",
        "blockquote",
        "table",
        "ul",
        "ol",
        "dl",
        "figure",
        "form",
        "fieldset",
        "details",
        "address",
        "hr",
    }
)
LINES = frozenset({"li", "dt", "dd", "caption", "figcaption", "summary", "legend", "tr"})
CELLS = frozenset({"td", "th"})

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-]+)""", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def extract_html(source: str, data: bytes, limits: Limits, mime: str) -> Extracted:
    """Extract the visible text and title of an HTML document.

    Args:
        source: Name of the input, for error messages.
        data: Raw bytes.
        limits: Size limits (the caller checks the text limit on the result).
        mime: MIME type chosen from the suffix.

    Returns:
        One page (number ``None``); title from ``<title>``, else the first ``<h1>``.
    """
    html, encoding = _decode(source, data)
    bs4 = require("bs4")
    try:
        with warnings.catch_warnings():
            # bs4 warns when markup "looks like" a URL or filename; that is noise here.
            warnings.simplefilter("ignore")
            soup = bs4.BeautifulSoup(html, "html.parser")
    except Exception as exc:  # html.parser is lenient, but a library error must not escape
        raise InputError(source, f"could not parse HTML ({type(exc).__name__}: {exc})") from exc
    title = _title(soup)
    walker = _BlockWalker(bs4)
    walker.walk(soup)
    blocks = walker.finish()
    if not blocks:
        raise InputError(source, "no extractable text in the HTML (only markup or scripts)")
    pages = assemble_pages(blocks)
    metadata = {
        "format": "html",
        "encoding": encoding,
        "chars": len(pages[0][1]),
        "title": title,
    }
    return Extracted(source, Modality.TEXT, mime, title, pages, metadata, blocks=blocks)


class _BlockWalker:
    """Walks the DOM once: headings set the section path; tables, lists, definition lists and
    ``<pre>`` become blocks of their own; all other visible text gathers into prose blocks."""

    def __init__(self, bs4: Any) -> None:
        self._bs4 = bs4
        self._blocks: list[Block] = []
        self._headings: list[tuple[int, str]] = []
        self._prose = _LineWriter()

    @property
    def _section(self) -> tuple[str, ...]:
        return tuple(h for _, h in self._headings)

    def _flush(self) -> None:
        text = normalize_text(self._prose.text())
        self._prose = _LineWriter()
        if text.strip():
            self._blocks.append(Block("text", text, self._section))

    def _emit(self, kind: str, text: str) -> None:
        self._flush()
        text = normalize_text(text, keep_indent=kind in ("code", "list"))
        if text.strip():
            self._blocks.append(Block(kind, text, self._section))

    def finish(self) -> list[Block]:
        self._flush()
        return self._blocks

    def walk(self, node: Any) -> None:
        bs4 = self._bs4
        for child in node.children:
            if isinstance(child, bs4.NavigableString):
                if type(child) is bs4.NavigableString:
                    self._prose.add(str(child))
                continue
            name = child.name
            if name in DROP or _hidden(child):
                continue
            if name in HEADINGS:
                heading = _SPACES.sub(" ", child.get_text(" ")).strip()
                if heading:
                    self._flush()
                    level = int(name[1])
                    self._headings = [h for h in self._headings if h[0] < level]
                    self._blocks.append(Block("heading", heading, self._section))
                    self._headings.append((level, heading))
            elif name == "table":
                self._table(child)
            elif name in ("ul", "ol"):
                writer = _LineWriter()
                _walk(child, writer, bs4)
                self._emit("list", writer.text())
            elif name == "dl":
                self._emit("list", _definitions(child))
            elif name == "pre":
                self._emit("code", child.get_text().strip("\n"))
            elif name in PARAGRAPHS:
                self._prose.paragraph()
                self.walk(child)
                self._prose.paragraph()
            else:
                # Inline or line-level markup outside a table/list: the original walker knows
                # its line breaks, but must not descend into headings/tables, so recurse here.
                if name in LINES or name == "br":
                    self._prose.line()
                if name == "img" and child.get("alt"):
                    self._prose.add(f" {child.get('alt')} ")
                self.walk(child)
                if name in LINES:
                    self._prose.line()

    def _table(self, table: Any) -> None:
        rows = []
        header_rows = 0
        for tr in table.find_all("tr"):
            if tr.find_parent("table") is not table:
                continue  # a nested table's rows belong to that table
            cells = tr.find_all(CELLS, recursive=False)
            if not cells:
                continue
            if not rows and all(c.name == "th" for c in cells) or tr.find_parent("thead"):
                header_rows += 1
            rows.append([_SPACES.sub(" ", c.get_text(" ")).strip() for c in cells])
        caption = table.find("caption")
        section = self._section
        if caption is not None and caption.get_text(strip=True):
            section = (*section, _SPACES.sub(" ", caption.get_text(" ")).strip())
        block = table_block(rows, section, has_header=header_rows > 0)
        if block is not None:
            self._flush()
            self._blocks.append(block)


def _definitions(dl: Any) -> str:
    """``<dt>term</dt><dd>definition</dd>`` as ``"term: definition"`` lines."""
    lines: list[str] = []
    term = ""
    for child in dl.find_all(["dt", "dd"]):
        text = _SPACES.sub(" ", child.get_text(" ")).strip()
        if child.name == "dt":
            if term:
                lines.append(term)
            term = text
        else:
            lines.append(f"{term}: {text}" if term else text)
            term = ""
    if term:
        lines.append(term)
    return "\n".join(lines)


def _decode(source: str, data: bytes) -> tuple[str, str]:
    """UTF-8 first; a declared ``<meta charset>`` is honoured only when UTF-8 fails.

    Unlike plain text, HTML declares its encoding, so a legacy page is decoded as declared
    instead of being refused.
    """
    try:
        return decode_text(source, data)
    except InputError as err:
        declared = _META_CHARSET.search(data[:4096])
        if declared is None or not err.reason.startswith("not valid UTF-8"):
            raise
        charset = declared.group(1).decode("ascii").lower()
        try:
            return data.decode(charset), charset
        except (LookupError, UnicodeDecodeError):
            raise InputError(
                source,
                f"{err.reason}; the declared charset {charset!r} does not decode it",
            ) from err


def _title(soup: Any) -> str | None:
    for tag in (soup.title, soup.find("h1")):
        if tag is not None:
            text = _SPACES.sub(" ", tag.get_text(" ")).strip()
            if text:
                return text
    return None


class _LineWriter:
    """Accumulates inline text into lines; blocks ask for line or paragraph breaks."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._current: list[str] = []

    def add(self, text: str) -> None:
        self._current.append(text)

    def line(self) -> None:
        joined = _SPACES.sub(" ", "".join(self._current)).strip()
        self._current = []
        if joined:
            self._lines.append(joined)

    def paragraph(self) -> None:
        self.line()
        if self._lines and self._lines[-1] != "":
            self._lines.append("")

    def raw(self, text: str) -> None:
        """Preformatted text: lines kept as they are."""
        self.paragraph()
        self._lines.extend(text.strip("\n").split("\n"))
        self.paragraph()

    def text(self) -> str:
        self.line()
        return "\n".join(self._lines)


def _walk(node: Any, out: _LineWriter, bs4: Any) -> None:
    for child in node.children:
        if isinstance(child, bs4.NavigableString):
            # Comments, doctypes, CDATA and processing instructions are NavigableStrings too.
            if type(child) is bs4.NavigableString:
                out.add(str(child))
            continue
        name = child.name
        if name in DROP or _hidden(child):
            continue
        if name == "br":
            out.line()
        elif name == "pre":
            out.raw(child.get_text())
        elif name == "tr":
            _row(child, out)
        elif name in HEADINGS or name in PARAGRAPHS:
            out.paragraph()
            _walk(child, out, bs4)
            out.paragraph()
        elif name in LINES:
            out.line()
            if name == "li":
                out.add(_marker(child))  # keeps list items recognisable without tags
            _walk(child, out, bs4)
            out.line()
        elif name == "img":
            alt = child.get("alt")
            if alt:
                out.add(f" {alt} ")
        else:
            _walk(child, out, bs4)


def _row(row: Any, out: _LineWriter) -> None:
    """A table row as one line, cells separated by `` | `` so columns stay readable."""
    cells = [
        _SPACES.sub(" ", cell.get_text(" ")).strip()
        for cell in row.find_all(CELLS, recursive=False)
    ]
    out.line()
    out.add(" | ".join(cells) if cells else row.get_text(" "))
    out.line()


def _hidden(tag: Any) -> bool:
    attrs = tag.attrs or {}
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    style = str(attrs.get("style", "")).replace(" ", "").lower()
    return "display:none" in style


def _marker(item: Any) -> str:
    """``"3. "`` for the third item of an ``<ol>`` (honouring ``start``), ``"- "`` otherwise."""
    parent = item.parent
    if parent is None or parent.name != "ol":
        return "- "
    try:
        start = int(parent.get("start", 1))
    except ValueError:
        start = 1
    return f"{start + len(item.find_previous_siblings('li'))}. "
