"""Extract text from a file's bytes: one function, dispatched by suffix and sniffed content.

Every failure leaves here as :class:`~edgerag.errors.InputError` (or
:class:`~edgerag.errors.InputTooLargeError`) naming the source and a human reason; library
exceptions (pypdf, bs4, codecs) are translated once, in the format modules.

Format modules are imported lazily so that ``import edgerag`` never pulls pypdf or bs4.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from edgerag.errors import InputError, InputTooLargeError
from edgerag.ingest.limits import Limits, human_bytes
from edgerag.ingest.structure import Block
from edgerag.types import Modality

logger = logging.getLogger(__name__)

# suffix → (format module, MIME type)
FORMATS: dict[str, tuple[str, str]] = {
    ".txt": ("text", "text/plain"),
    ".log": ("text", "text/plain"),
    ".md": ("markdown", "text/markdown"),
    ".markdown": ("markdown", "text/markdown"),
    ".rst": ("text", "text/x-rst"),
    ".csv": ("text", "text/csv"),
    ".json": ("text", "application/json"),
    ".html": ("html", "text/html"),
    ".htm": ("html", "text/html"),
    ".pdf": ("pdf", "application/pdf"),
}

PDF_MAGIC = b"%PDF-"
# The PDF spec tolerates junk before the header; readers look in the first KiB.
PDF_HEADER_WINDOW = 1024


@dataclass
class Extracted:
    """Text pulled out of one input, page by page, ready for chunking.

    Attributes:
        source: The name or path the user gave; used in every error message.
        modality: ``Modality.TEXT`` for every format handled here.
        mime: MIME type of the input, e.g. ``"application/pdf"``.
        title: Document title when the format has one (first heading, <title>, PDF info).
        pages: ``(page number 1-based or None, text)``; PDFs have one entry per page, empty
            pages included so numbering stays exact.
        metadata: Format details, e.g. ``{"format": "pdf", "pages": 12, "title": ...}``.
        blocks: Structure (paragraphs, lists, code, table rows under their section path) when
            the format shows it; ``pages`` is then exactly the blocks joined. Empty for plain
            text, which is chunked as token windows of the pages.
    """

    source: str
    modality: Modality
    mime: str
    title: str | None
    pages: list[tuple[int | None, str]]
    metadata: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    @property
    def text(self) -> str:
        """All pages joined by blank lines (for hashing or previews)."""
        return "\n\n".join(text for _, text in self.pages if text)

    @property
    def chars(self) -> int:
        return sum(len(text) for _, text in self.pages)


def supported_suffixes() -> set[str]:
    """File suffixes ``extract`` accepts, lower-case with the dot (``{".pdf", ".md", ...}``)."""
    return set(FORMATS)


def extract(source: str, data: bytes, limits: Limits | None = None) -> Extracted:
    """Extract the text of ``data``, whose name or path is ``source``.

    Args:
        source: The input's name or path; its suffix picks the format (case-insensitive).
        data: The raw file content.
        limits: Size limits; defaults to ``Limits()``.

    Returns:
        The extracted pages, title and metadata.

    Raises:
        InputTooLargeError: The file or its text is over a limit.
        InputError: The input is empty, of an unsupported type, binary, not UTF-8, a broken or
            encrypted PDF, or has no extractable text.
    """
    limits = limits or Limits()
    if len(data) > limits.max_file_bytes:
        raise InputTooLargeError(
            source,
            f"file is {human_bytes(len(data))}, over the {human_bytes(limits.max_file_bytes)} "
            "limit (Limits.max_file_bytes)",
        )
    if not data:
        raise InputError(source, "empty file (0 bytes)")
    module, mime = _detect(source, data)
    result = _handler(module)(source, data, limits, mime)
    check_text_limit(source, result.chars, limits)
    logger.debug(
        "extracted %s: %s, %d page(s), %d chars",
        source,
        mime,
        len(result.pages),
        result.chars,
    )
    return result


def _detect(source: str, data: bytes) -> tuple[str, str]:
    """Pick the format module and MIME type from the suffix, overridden by content sniffing."""
    suffix = PurePath(source).suffix.lower()
    is_pdf = PDF_MAGIC in data[:PDF_HEADER_WINDOW]
    if suffix in FORMATS:
        module, mime = FORMATS[suffix]
        # A PDF saved under a text name would otherwise be rejected as "binary data".
        if is_pdf and module != "pdf":
            logger.info("%s has a PDF header; reading it as a PDF", source)
            return FORMATS[".pdf"]
        return module, mime
    if is_pdf:
        return FORMATS[".pdf"]
    what = f"suffix {suffix!r}" if suffix else "no suffix"
    raise InputError(
        source,
        f"unsupported file type ({what}); supported: {', '.join(sorted(FORMATS))}",
    )


def _handler(module: str) -> Callable[[str, bytes, Limits, str], Extracted]:
    # Imported here, not at the top: keeps pypdf/bs4 off the import path of the package.
    if module == "pdf":
        from edgerag.ingest.extract.pdf import extract_pdf

        return extract_pdf
    if module == "markdown":
        from edgerag.ingest.extract.markdown import extract_markdown

        return extract_markdown
    if module == "html":
        from edgerag.ingest.extract.html import extract_html

        return extract_html
    from edgerag.ingest.extract.text import extract_text

    return extract_text


def check_text_limit(source: str, chars: int, limits: Limits) -> None:
    if chars > limits.max_text_chars:
        raise InputTooLargeError(
            source,
            f"extracted text is {chars:,} characters, over the {limits.max_text_chars:,} "
            "limit (Limits.max_text_chars)",
        )


__all__ = ["FORMATS", "Extracted", "extract", "supported_suffixes"]
