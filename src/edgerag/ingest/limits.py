"""Size limits applied while ingesting, so one hostile or oversized input can't exhaust a node."""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Upper bounds on one input. Going over any of them raises ``InputTooLargeError``.

    Attributes:
        max_file_bytes: Size of the raw file.
        max_pdf_pages: Page count of a PDF, checked before any page is parsed.
        max_pdf_page_content_bytes: Decoded drawing instructions (content streams) of one PDF
            page, checked before the page is parsed: a few KB of zlib can decode to megabytes
            of instructions (the heaviest page of the 261-page Debian Reference has 50 KB).
        max_pdf_content_bytes: The same, summed over all pages (a stream shared by many pages
            counts once per page, as each page parses it).
        max_pdf_table_page_chars: Text pieces (pdfium objects or characters, whichever is more)
            on a page above which its tables are not looked for; the page's text is kept.
            pdfplumber's table finder costs ~0.5 ms per character; real pages have < 6,000.
        max_text_chars: Characters of extracted text (all pages together).
        max_pixels: Width × height of an image or video frame, read from the header before any
            pixel is decoded (decompression bombs).
        max_audio_seconds: Duration of an audio file or a video's audio track.
        max_video_seconds: Duration of a video.
        max_frames: Video frames kept after sampling and de-duplication.
    """

    max_file_bytes: int = 50 * 1024 * 1024
    max_pdf_pages: int = 2000
    max_pdf_page_content_bytes: int = 8 * 1024 * 1024
    max_pdf_content_bytes: int = 256 * 1024 * 1024
    max_pdf_table_page_chars: int = 20_000
    max_text_chars: int = 20_000_000
    max_pixels: int = 50_000_000
    max_audio_seconds: float = 4 * 3600.0
    max_video_seconds: float = 2 * 3600.0
    max_frames: int = 3600


def human_bytes(n: int) -> str:
    """Format a byte count for error messages, e.g. ``"52.4 MB"``."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
