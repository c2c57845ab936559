"""A PDF page as a PNG and the boxes of a cited passage on it, with poppler's command-line tools
(``pdftoppm``, ``pdftotext -bbox-layout``; Debian ``poppler-utils``)."""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from edgerag.errors import ConfigError, InputError, NotFoundError

TIMEOUT_S = 30
MIN_RUN = 2  # words in a row that must match before a run is highlighted
_WORD = re.compile(r"[\w.-]+", re.UNICODE)
_NS = "{http://www.w3.org/1999/xhtml}"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"{name} not found: install poppler-utils for PDF page previews")
    return path


def _run(args: list[str], source: Path) -> bytes:
    proc = subprocess.run(args, capture_output=True, timeout=TIMEOUT_S, check=False)
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(str(source.name), f"poppler failed: {reason[-1] if reason else '?'}")
    return proc.stdout


def render_page(pdf: Path, page: int, width: int = 900) -> bytes:
    """Page ``page`` (1-based) of ``pdf`` as PNG bytes, ``width`` pixels wide."""
    if page < 1:
        raise NotFoundError(f"page {page} does not exist")
    with tempfile.TemporaryDirectory(prefix="edgerag-page-") as tmp:
        out = Path(tmp) / "page"
        _run(
            [
                _tool("pdftoppm"),
                "-png",
                "-f", str(page),
                "-l", str(page),
                "-scale-to-x", str(width),
                "-scale-to-y", "-1",
                "-singlefile",
                str(pdf),
                str(out),
            ],
            pdf,
        )  # fmt: skip
        written = out.with_suffix(".png")
        png = written.read_bytes() if written.exists() else b""
    if not png:
        raise NotFoundError(f"{pdf.name} has no page {page}")
    return png


@dataclass(frozen=True)
class Box:
    """A highlighted rectangle as fractions of the page (0..1), so it scales with the image."""

    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class _Word:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    line: int


def _norm(word: str) -> str:
    return word.lower().strip(".,;:!?()[]\"'")


def page_words(pdf: Path, page: int) -> tuple[list[_Word], float, float]:
    """The words of one page with their boxes (points), and the page's width and height."""
    xml = _run(
        [_tool("pdftotext"), "-bbox-layout", "-f", str(page), "-l", str(page), str(pdf), "-"],
        pdf,
    )
    root = ElementTree.fromstring(xml)
    page_el = next(root.iter(f"{_NS}page"), None)
    if page_el is None:
        raise NotFoundError(f"{pdf.name} has no page {page}")
    words: list[_Word] = []
    for line_no, line in enumerate(page_el.iter(f"{_NS}line")):
        for w in line.iter(f"{_NS}word"):
            words.append(
                _Word(
                    w.text or "",
                    float(w.get("xMin", 0)),
                    float(w.get("yMin", 0)),
                    float(w.get("xMax", 0)),
                    float(w.get("yMax", 0)),
                    line_no,
                )
            )
    return words, float(page_el.get("width", 1)), float(page_el.get("height", 1))


def highlight_boxes(pdf: Path, page: int, passage: str) -> list[Box]:
    """Boxes around ``passage`` on the page: the runs of page words that match the passage's
    words in order (at least ``MIN_RUN`` in a row), merged into one box per line."""
    words, width, height = page_words(pdf, page)
    target = [_norm(w) for w in _WORD.findall(passage)]
    seen = [_norm(w.text) for w in words]
    matcher = difflib.SequenceMatcher(a=seen, b=target, autojunk=False)
    marked = [
        words[i]
        for block in matcher.get_matching_blocks()
        if block.size >= MIN_RUN
        for i in range(block.a, block.a + block.size)
    ]
    lines: dict[int, list[_Word]] = {}
    for w in marked:
        lines.setdefault(w.line, []).append(w)
    boxes = []
    for line_words in lines.values():
        x0 = min(w.x0 for w in line_words)
        y0 = min(w.y0 for w in line_words)
        x1 = max(w.x1 for w in line_words)
        y1 = max(w.y1 for w in line_words)
        boxes.append(Box(x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height))
    return boxes
