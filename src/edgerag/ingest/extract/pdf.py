"""PDF text: one page entry per PDF page, so citations keep exact page numbers.

pypdf checks the file (envelope, encryption, page count, title); the text comes from pdfium
(pypdfium2), which keeps the word spaces of typeset PDFs where pypdf runs words together
("grep(1)canbeusedto…"), at ~8 ms a page. Line font sizes from pdfium mark headings (the
section path); pages that draw rules are handed to pdfplumber's table finder, and each table
becomes rows that keep their column headers. Without pypdfium2 the pypdf text is used.

Every failure is translated here into :class:`~edgerag.errors.InputError` with a reason a
user can act on (truncated, encrypted, scanned), never a parser traceback.
"""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from typing import Any

from edgerag._optional import available, require
from edgerag.errors import InputError, InputTooLargeError
from edgerag.ingest.extract import (
    PDF_HEADER_WINDOW,
    PDF_MAGIC,
    Extracted,
    check_text_limit,
)
from edgerag.ingest.extract.text import normalize_text
from edgerag.ingest.limits import Limits
from edgerag.ingest.structure import Block, assemble_pages
from edgerag.types import Modality

logger = logging.getLogger(__name__)
# pypdf logs every repair it attempts; without a handler Python's last-resort handler would
# print them to stderr of an unconfigured app. Apps that configure logging still receive them.
logging.getLogger("pypdf").addHandler(logging.NullHandler())

# Writers end the file with %%EOF; a little trailing junk is tolerated, as readers do.
EOF_MARKER = b"%%EOF"
EOF_WINDOW = 4096

# Typographic ligatures some PDF producers emit as single glyphs; searches for "fi" miss them.
LIGATURES = str.maketrans(
    {
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\ufb05": "st",
        "\ufb06": "st",
    }
)
# Running header/footer detection (see strip_running_lines).
RUNNING_EDGE = 2  # lines looked at, at the top and at the bottom of each page
RUNNING_SHARE = 0.6  # share of pages a line must repeat on
RUNNING_MIN_PAGES = 3
_DIGITS = re.compile(r"\d+")

# "mainte-\nnance" → "maintenance": a word broken at a line end, continued in lower case.
# Upper case or digits after the break ("KX-\n40") are kept as written: likely a real hyphen.
_HYPHEN_BREAK = re.compile(r"(?<=[^\W\d_]{2})-\n(?=[^\W\d_A-Z]{2})")


def extract_pdf(source: str, data: bytes, limits: Limits, mime: str) -> Extracted:
    """Extract the text of every page of a PDF.

    Args:
        source: Name of the input, for error messages.
        data: Raw bytes.
        limits: Page and text limits (checked while reading, so a huge PDF fails early).
        mime: Always ``"application/pdf"``.

    Returns:
        One ``(page number, text)`` entry per page, empty pages included.
    """
    _check_envelope(source, data)
    pypdf = require("pypdf")
    reader = _open(source, data, pypdf)
    count = _page_count(source, reader)
    if count == 0:
        raise InputError(source, "PDF has no pages")
    if count > limits.max_pdf_pages:
        raise InputTooLargeError(
            source,
            f"PDF has {count:,} pages, over the {limits.max_pdf_pages:,} page limit "
            "(Limits.max_pdf_pages)",
        )
    blocks: list[Block] = []
    if available("pypdfium2"):
        from edgerag.ingest.extract.pdf_layout import read_structured  # needs this module

        blocks, failed = read_structured(source, data, count, limits)
        pages = _all_pages(assemble_pages(blocks), count)
    else:
        pages, failed = _read_pages(source, reader, count, limits)
        pages = strip_running_lines(pages)
    if not any(text.strip() for _, text in pages):
        if failed:
            raise InputError(source, f"corrupt PDF: text extraction failed on {failed} page(s)")
        raise InputError(source, "no extractable text — scanned? OCR comes with image support")
    title = _info_title(reader)
    metadata: dict[str, Any] = {"format": "pdf", "pages": count, "title": title}
    if failed:
        metadata["failed_pages"] = failed
    return Extracted(source, Modality.TEXT, mime, title, pages, metadata, blocks=blocks)


def _all_pages(pages: list[tuple[int | None, str]], count: int) -> list[tuple[int | None, str]]:
    """One entry per page, empty pages included, so numbering stays exact."""
    texts = dict(pages)
    return [(n, texts.get(n, "")) for n in range(1, count + 1)]


def _check_envelope(source: str, data: bytes) -> None:
    """Cheap structural checks that give a clearer reason than the parser would."""
    if PDF_MAGIC not in data[:PDF_HEADER_WINDOW]:
        raise InputError(source, "not a PDF (no %PDF- header); the file is damaged or misnamed")
    if EOF_MARKER not in data[-EOF_WINDOW:]:
        # pypdf can sometimes rebuild a cut file, but would then silently lose pages.
        raise InputError(source, "truncated PDF: no %%EOF marker at the end (incomplete copy?)")


def _open(source: str, data: bytes, pypdf: Any) -> Any:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    except Exception as exc:  # pypdf raises PdfReadError, but also ValueError, KeyError, ...
        raise InputError(source, f"corrupt or truncated PDF ({_describe(exc)})") from exc
    if reader.is_encrypted:
        _decrypt(source, reader, pypdf)
    return reader


def _decrypt(source: str, reader: Any, pypdf: Any) -> None:
    """Try the empty user password: many PDFs are 'encrypted' only to restrict printing."""
    try:
        result = reader.decrypt("")
    except pypdf.errors.DependencyError as exc:
        raise InputError(
            source,
            "encrypted PDF uses AES; install the 'cryptography' package to read it",
        ) from exc
    except Exception as exc:
        raise InputError(
            source, f"encrypted PDF could not be decrypted ({_describe(exc)})"
        ) from exc
    if result == pypdf.PasswordType.NOT_DECRYPTED:
        raise InputError(source, "encrypted PDF: password required")
    logger.debug("%s: decrypted with the empty user password", source)


def _page_count(source: str, reader: Any) -> int:
    try:
        return len(reader.pages)
    except Exception as exc:
        raise InputError(
            source, f"corrupt PDF: cannot read its page tree ({_describe(exc)})"
        ) from exc


def _read_pages(
    source: str, reader: Any, count: int, limits: Limits
) -> tuple[list[tuple[int | None, str]], int]:
    """Text of each page; a page that fails is kept empty (and counted) so numbering holds."""
    pages: list[tuple[int | None, str]] = []
    failed = chars = 0
    for number in range(1, count + 1):
        try:
            raw = reader.pages[number - 1].extract_text() or ""
        except Exception as exc:  # noqa: BLE001 -- one bad page must not lose the whole manual
            logger.warning(
                "%s: page %d: text extraction failed: %s",
                source,
                number,
                _describe(exc),
            )
            raw, failed = "", failed + 1
        text = clean_pdf_text(raw)
        chars += len(text)
        check_text_limit(source, chars, limits)
        pages.append((number, text))
    return pages, failed


def clean_pdf_text(text: str) -> str:
    """Undo PDF typesetting artefacts: ligatures, hyphenated line breaks, stray spacing."""
    text = text.translate(LIGATURES)
    text = normalize_text(text)
    return _HYPHEN_BREAK.sub("", text)


def strip_running_lines(
    pages: list[tuple[int | None, str]],
) -> list[tuple[int | None, str]]:
    """Remove running headers/footers: edge lines repeated on most pages.

    A line counts as running when, with digits masked ("Page 3 of 12" → "Page # of #"), it is
    among the first or last ``RUNNING_EDGE`` lines of at least ``RUNNING_SHARE`` of the pages.
    They carry no answer but would repeat in every chunk and skew keyword ranking.
    """
    texts = [text for _, text in pages if text]
    if len(texts) < RUNNING_MIN_PAGES:
        return pages
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update({_mask(line) for line in _edge_lines(text)})
    running = {key for key, n in counts.items() if key and n >= RUNNING_SHARE * len(texts)}
    if not running:
        return pages
    return [(number, _drop_edges(text, running)) for number, text in pages]


def _edge_lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:RUNNING_EDGE] + lines[-RUNNING_EDGE:]


def _drop_edges(text: str, running: set[str]) -> str:
    lines = text.split("\n")
    start, end = 0, len(lines)
    while start < min(RUNNING_EDGE, end) and _mask(lines[start]) in running:
        start += 1
    while end > max(start, len(lines) - RUNNING_EDGE) and _mask(lines[end - 1]) in running:
        end -= 1
    return "\n".join(lines[start:end]).strip("\n")


def _mask(line: str) -> str:
    return _DIGITS.sub("#", line.strip())


def _info_title(reader: Any) -> str | None:
    try:
        info = reader.metadata
        title = info.title if info is not None else None
    except Exception:  # noqa: BLE001 -- a broken info dictionary only costs the title
        return None
    if isinstance(title, str) and title.strip():
        return " ".join(title.split())
    return None


def _describe(exc: Exception) -> str:
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
