"""Plain-text formats (.txt .md .markdown .rst .csv .json .log), plus the decoding and
whitespace helpers the HTML and PDF extractors share.

Decoding is strict on purpose: guessing a legacy code page silently corrupts text (and every
answer built on it), so anything that isn't UTF-8, or UTF-16/32 with a BOM, is refused with the
offset of the first bad byte so the user can find and re-save the file.
"""

from __future__ import annotations

import codecs
import logging
import re
import unicodedata

from edgerag.errors import InputError
from edgerag.ingest.extract import Extracted
from edgerag.ingest.limits import Limits
from edgerag.types import Modality

logger = logging.getLogger(__name__)

# Longest BOM first: the UTF-32-LE BOM starts with the UTF-16-LE one.
BOMS: list[tuple[bytes, str]] = [
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]

# Control characters that never occur in text (everything below 0x20 except \t \n \v \f \r, DEL).
_CONTROL_BYTES = bytes([*range(0x09), 0x0E, *range(0x10, 0x20), 0x7F])
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
BINARY_RATIO = 0.05  # share of control characters above which data is "binary", not text
SNIFF_BYTES = 64 * 1024

_HSPACE = re.compile(r"[^\S\n]+")  # horizontal whitespace (incl. NBSP, tabs, \v \f)
_INDENT_RUN = re.compile(r"(?<=\S)[^\S\n]+")  # runs after the first non-space of a line
_BLANK_LINES = re.compile(r"\n{3,}")
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")

_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:._])\1{2,}[ \t]*$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*\n", re.DOTALL)
_FRONT_TITLE = re.compile(r"^title:[ \t]*[\"']?(.+?)[\"']?[ \t]*$", re.MULTILINE)


def extract_text(source: str, data: bytes, limits: Limits, mime: str) -> Extracted:
    """Decode a plain-text file and normalise its whitespace.

    Args:
        source: Name of the input, for error messages.
        data: Raw bytes.
        limits: Size limits (the caller checks the text limit on the result).
        mime: MIME type chosen from the suffix.

    Returns:
        One page (number ``None``) holding the whole text.
    """
    text, encoding = decode_text(source, data)
    keep_indent = mime in ("text/markdown", "text/x-rst")
    text = normalize_text(text, keep_indent=keep_indent)
    if not text.strip():
        raise InputError(source, "no text (the file holds only whitespace)")
    title = _title(text, mime)
    fmt = _FORMAT_NAMES.get(mime, "text")
    metadata = {"format": fmt, "encoding": encoding, "chars": len(text), "title": title}
    return Extracted(source, Modality.TEXT, mime, title, [(None, text)], metadata)


_FORMAT_NAMES = {
    "text/markdown": "markdown",
    "text/x-rst": "rst",
    "text/csv": "csv",
    "application/json": "json",
}


def decode_text(source: str, data: bytes) -> tuple[str, str]:
    """Decode bytes as UTF-8 (BOM optional) or UTF-16/32 with a BOM.

    Returns:
        ``(text, encoding name)``; a BOM is never part of the text.

    Raises:
        InputError: The data is binary or not in an accepted encoding.
    """
    for bom, encoding in BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise InputError(
                    source,
                    f"not valid {encoding.upper()} despite its BOM "
                    f"(bad bytes at offset {exc.start + len(bom)})",
                ) from exc
            _reject_control_chars(source, text)
            return text, encoding + ("-sig" if encoding == "utf-8" else "")
    _reject_binary(source, data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        raise InputError(
            source,
            f"not valid UTF-8 (first bad byte 0x{bad:02x} at offset {exc.start}); "
            "re-save the file as UTF-8",
        ) from exc
    _reject_control_chars(source, text)
    return text, "utf-8"


def _reject_binary(source: str, data: bytes) -> None:
    """Refuse data that is clearly not text: NUL bytes or many control bytes."""
    if b"\x00" in data:
        raise InputError(source, "binary data, not text (contains NUL bytes)")
    sample = data[:SNIFF_BYTES]
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if controls > BINARY_RATIO * len(sample):
        raise InputError(source, "binary data, not text (mostly non-printable bytes)")


def _reject_control_chars(source: str, text: str) -> None:
    sample = text[:SNIFF_BYTES]
    if "\x00" in sample or len(_CONTROL_CHARS.findall(sample)) > BINARY_RATIO * len(sample):
        raise InputError(source, "binary data, not text (mostly non-printable characters)")


def normalize_text(text: str, keep_indent: bool = False) -> str:
    """Normalise newlines and whitespace, keeping paragraph breaks.

    Unicode is composed (NFC), zero-width characters and soft hyphens are removed, runs of
    spaces/tabs collapse to one space, trailing spaces go, and more than one blank line becomes
    one blank line.

    Args:
        text: Decoded text.
        keep_indent: Keep leading indentation (it carries structure in Markdown/reST lists and
            code blocks); inner runs are still collapsed.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text)
    text = _ZERO_WIDTH.sub("", text)
    text = _CONTROL_CHARS.sub("", text)
    lines = []
    for line in text.split("\n"):
        line = line.rstrip()
        if keep_indent:
            line = _INDENT_RUN.sub(" ", line.replace("\t", "    "))
        else:
            line = _HSPACE.sub(" ", line).lstrip()
        lines.append(line)
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")


def _title(text: str, mime: str) -> str | None:
    if mime == "text/markdown":
        return markdown_title(text)
    if mime == "text/x-rst":
        return rst_title(text)
    return None


def markdown_title(text: str) -> str | None:
    """Front-matter ``title:``, else the first ATX (``# T``) or setext (``T\\n===``) heading."""
    front = _FRONT_MATTER.match(text)
    if front:
        found = _FRONT_TITLE.search(front.group(1))
        if found:
            return found.group(1).strip()
        text = text[front.end() :]
    lines = text.split("\n")
    in_fence = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence  # a "# comment" inside a code block is not a heading
            continue
        if in_fence:
            continue
        atx = _ATX_HEADING.match(line)
        if atx:
            return atx.group(1).strip()
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _SETEXT_UNDERLINE.match(following):
            return line.strip()
    return None


def rst_title(text: str) -> str | None:
    """The first line underlined with a run of punctuation (``Title\\n=====``)."""
    lines = text.split("\n")
    for i in range(len(lines) - 1):
        line, under = lines[i].strip(), lines[i + 1].strip()
        if (
            line
            and not _RST_UNDERLINE.match(line)
            and _RST_UNDERLINE.match(under)
            and len(under) >= len(line)
        ):
            return line
    return None
