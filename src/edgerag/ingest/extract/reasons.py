"""Library exceptions → a reason a technician reads, for :class:`~edgerag.errors.InputError`.

FFmpeg (PyAV), Pillow and pypdf describe failures in their own terms: ``[Errno 1094995529]``
(an AVERROR code), ``<_io.BytesIO object at 0x7f…>``, ``b'…'`` excerpts of raw PDF bytes. A user
cannot act on those. Each function here maps a library's exception to what is wrong with the file,
in words, and never lets an object repr, an errno or a byte dump through.
"""

from __future__ import annotations

import re

# FFmpeg error class name → what it means for the file at hand.
_AV_REASONS = {
    "InvalidDataError": "the data is damaged or is not in a format FFmpeg reads",
    "EOFError": "the file ends early (truncated)",
    "DecoderNotFoundError": "its codec is not supported (FFmpeg has no decoder for it)",
    "DemuxerNotFoundError": "its container format is not supported",
    "PatchWelcomeError": "it uses a codec feature FFmpeg does not implement",
    "MemoryError": "decoding it needs more memory than is available",
}

# pypdf error class name → what it means.
_PDF_REASONS = {
    "PdfStreamError": "a data stream inside it ends early or is damaged",
    "EmptyFileError": "the file is empty",
    "FileNotDecryptedError": "it is encrypted",
}

_INTERNALS = [
    re.compile(r"\[Errno -?\d+\]\s*"),  # errno prefixes (FFmpeg AVERROR codes too)
    re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>"),  # object reprs
    re.compile(r"""\bb(['"]).*?(?<!\\)\1"""),  # bytes excerpts
    re.compile(r"\s*@\s*\d+"),  # pypdf stream offsets
    re.compile(r":\s*'[a-z_]+\(\)'"),  # the C function that failed ('avcodec_send_packet()')
]


def plain(text: str) -> str:
    """``text`` without errnos, object reprs, byte excerpts and C function names; one line."""
    for pattern in _INTERNALS:
        text = pattern.sub("", text)
    text = " ".join(text.split())
    return text.strip(" :;,") or "unreadable data"


def av_reason(exc: BaseException) -> str:
    """Why FFmpeg could not read a file."""
    known = _AV_REASONS.get(type(exc).__name__)
    if known:
        return known
    strerror = getattr(exc, "strerror", None)
    return plain(str(strerror or exc)).lower() or "FFmpeg could not decode it"


def image_reason(exc: BaseException) -> str:
    """Why Pillow could not read an image."""
    text = str(exc).strip()
    if type(exc).__name__ == "UnidentifiedImageError" or text.startswith("cannot identify"):
        return "not a recognised image format, or its header is damaged"
    if "truncated" in text.lower() or "Truncated File Read" in text:
        return "the image data ends early, the file is truncated"
    if "broken data stream" in text or "unrecognized data stream" in text:
        return "the image data is damaged"
    return plain(text or type(exc).__name__)


def pdf_reason(exc: BaseException) -> str:
    """Why pypdf could not read (part of) a PDF."""
    known = _PDF_REASONS.get(type(exc).__name__)
    if known:
        return known
    text = str(exc).strip()
    if text.startswith("Invalid Elementary Object"):
        return "an object inside it is damaged"
    if not text or isinstance(exc, KeyError | IndexError | AttributeError | TypeError):
        return "its internal structure is damaged"
    return plain(text)
