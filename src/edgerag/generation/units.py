"""Answer units: the sentences and table rows a source is made of, cleaned for reading.

A retrieved chunk is rarely the answer; one of its sentences or table rows is. This module turns
a hit's text into units a reader can take as they are:

* front matter (``---`` … ``---``), Markdown markup (``#``, ``**``, backticks, list bullets, code
  fences) and HTML-ish pipes are removed;
* a Markdown table row keeps its column headers and reads as a sentence
  ("Symptom: E-107 seal flush pressure low; Action: Close V-05 …."), and so does a row item
  from structure-aware extraction (``metadata["unit"] == "row"``, "Code E-107 · Type T · …");
* prose is split into sentences; headings, fragments and code-only lines are not units.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from edgerag.types import Hit

_FRONT_MATTER = re.compile(r"\A\s*---\s*\n.*?\n---\s*(\n|\Z)", re.S)
_INLINE_FRONT_MATTER = re.compile(r"^\s*---\s+(?:\w[\w -]*:\s[^-]*?\s)+---\s*")
_PARAGRAPH = re.compile(r"\n\s*\n")
# A sentence ends at . ! ? (optionally closed by a quote/bracket) followed by space and a capital,
# digit or opening quote; abbreviations like "e.g. the" stay joined because "the" is lower case.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")
_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_EMPHASIS = re.compile(r"(\*\*|__|`+)")
_BULLET = re.compile(r"^\s*(?:[-*+>]|\d+[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_ROW_SEPARATOR = " · "
_ASIDE = re.compile(r"^\([^()]*\)\.?$")
# A log entry starts with a time ("23:50 Opened strainer cover."); a dated line heads a section
# of a log ("2026-03-14  Shift N  Operator: J. Mbeki").
_LOG_ENTRY = re.compile(r"^\s*\d{1,2}:\d{2}\s")
_DATED_HEADER = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\b")
MAX_ENTRY_CHARS = 400
_ENDS = (".", "!", "?", ")", '"', "'", ":", "”")


@dataclass(frozen=True)
class Unit:
    """One answerable piece of a source: ``kind`` is "sentence" or "row"."""

    text: str
    kind: str
    position: int  # order within the source
    context: str = ""  # the heading or dated header above it: scored with it, never shown
    lead: bool = False  # first unit of its document or of a section: where answers are stated


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` with their original characters (whitespace runs collapsed)."""
    out: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        flat = _WHITESPACE.sub(" ", paragraph).strip()
        if flat:
            out.extend(s.strip() for s in _SENTENCE_END.split(flat) if s.strip())
    return out


def strip_front_matter(text: str) -> str:
    text = _FRONT_MATTER.sub("", text, count=1)
    return _INLINE_FRONT_MATTER.sub("", text, count=1)


def clean_inline(text: str, pipes: bool = True) -> str:
    """Markup off one line or sentence: emphasis, backticks, extra space, and (``pipes``)
    leftover table pipes. Prose keeps a lone pipe: it is content there ('a trailing "|"')."""
    text = _EMPHASIS.sub("", text)
    if pipes:
        text = text.replace(" | ", ", ").replace("|", " ")
    return _WHITESPACE.sub(" ", text).strip(" ,;")


def _cells(line: str) -> list[str]:
    return [clean_inline(c) for c in line.strip().strip("|").split("|")]


def row_sentence(cells: list[str], headers: list[str] | None) -> str:
    """A table row as a sentence: "Header: value; Header: value." (headers kept)."""
    parts = []
    for i, cell in enumerate(cells):
        if not cell:
            continue
        head = headers[i] if headers and i < len(headers) and headers[i] else ""
        parts.append(f"{head}: {cell}" if head and head.lower() != cell.lower() else cell)
    sentence = "; ".join(parts)
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


def row_item_sentence(text: str) -> str:
    """A row item from extraction ("Code E-107 · Type T · Meaning: …") read as a sentence."""
    flat = _WHITESPACE.sub(" ", text).strip()
    parts = [clean_inline(p) for p in flat.split(_ROW_SEPARATOR) if p.strip()]
    sentence = "; ".join(p for p in parts if p)
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


def _is_prose(sentence: str) -> bool:
    """Skip code lines, headings, questions, fragments and asides wholly in parentheses
    ("(contributed by …)", "(see below)"): they don't answer anything."""
    if len(sentence) < 20 or sentence.endswith("?") or _ASIDE.match(sentence):
        return False
    letters = sum(map(str.isalpha, sentence))
    return letters / len(sentence) >= 0.5 and len(_WORD.findall(sentence)) >= 4


def _blocks(text: str) -> Iterator[tuple[str, list[str]]]:
    """("table", lines) for runs of pipe lines, ("code", lines) for fences, else ("text", …)."""
    kind, lines = "text", []  # type: tuple[str, list[str]]
    fenced = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            if lines:
                yield kind, lines
            fenced = not fenced
            kind, lines = ("code" if fenced else "text"), []
            continue
        this = "code" if fenced else ("table" if line.count("|") >= 2 else "text")
        if this != kind and lines:
            yield kind, lines
            lines = []
        kind = this
        lines.append(line)
    if lines:
        yield kind, lines


def _table_units(lines: list[str]) -> Iterator[str]:
    headers: list[str] | None = None
    rows = [line for line in lines if line.strip()]
    for i, line in enumerate(rows):
        if _TABLE_RULE.match(line):
            continue
        cells = _cells(line)
        if headers is None and i + 1 < len(rows) and _TABLE_RULE.match(rows[i + 1]):
            headers = cells
            continue
        if sum(bool(c) for c in cells) >= 2:
            yield row_sentence(cells, headers)


def _text_units(lines: list[str], code: bool) -> Iterator[tuple[str, str]]:
    """(unit, context) pairs of a text or code block."""
    if code:
        # Numbered steps in a code block are procedure steps: each one is a unit.
        for line in lines:
            step = clean_inline(_BULLET.sub("", line))
            if len(_WORD.findall(step)) >= 4:
                yield (step if step.endswith((".", "!", "?")) else step + "."), ""
        return
    context = ""
    paragraphs: list[tuple[str, str, bool]] = []  # (text, context, is a log entry)
    for raw in lines:
        if _HEADING.match(raw) or _DATED_HEADER.match(raw):
            context = clean_inline(_HEADING.sub("", raw))
            paragraphs.append(("", context, False))
            continue
        line = _BULLET.sub("", raw)
        # A bullet, numbered step or log entry starts a new paragraph even without a full stop.
        if _BULLET.match(raw) or _LOG_ENTRY.match(raw) or not paragraphs or not raw.strip():
            paragraphs.append((line, context, bool(_LOG_ENTRY.match(raw))))
        else:
            text, ctx, entry = paragraphs[-1]
            paragraphs[-1] = (text + " " + line, ctx, entry)
    for text, ctx, entry in paragraphs:
        flat = clean_inline(text, pipes=False)
        if entry and len(flat) <= MAX_ENTRY_CHARS and len(_WORD.findall(flat)) >= 4:
            yield flat, ctx  # a log entry is read whole: its sentences share one time
            continue
        for sentence in split_sentences(flat):
            if _is_prose(sentence):
                yield sentence, ctx


def units(hit: Hit) -> list[Unit]:
    """The cleaned sentences and rows of one hit, in reading order."""
    return units_of_item(hit.text, hit.metadata, hit.char_start, hit.page)


def units_of_item(
    text: str, metadata: Mapping[str, Any] | None, char_start: int | None, page: int | None
) -> list[Unit]:
    """The units of an item's text (the same at ingest, for stored unit vectors, and at query
    time, for its hit: positions must agree)."""
    row = (metadata or {}).get("unit") == "row"
    return list(_units_of(text, row, not char_start, (page or 0) <= 1))


@lru_cache(maxsize=4096)
def _units_of(text: str, row: bool, starts_page: bool, first_page: bool) -> tuple[Unit, ...]:
    """Memoised by text: the same chunks come back query after query (units are frozen)."""
    if row:
        return (Unit(row_item_sentence(text), "row", 0),)
    text = strip_front_matter(text)
    out: list[Unit] = []
    for kind, lines in _blocks(text):
        if kind == "table":
            pieces = [(t, "row", "") for t in _table_units(lines)]
        else:
            pieces = [(t, "sentence", c) for t, c in _text_units(lines, code=kind == "code")]
        start = len(out)
        out.extend(Unit(t, k, start + i, c) for i, (t, k, c) in enumerate(pieces))
    return tuple(_with_leads(_without_cut_ends(out, starts_page), starts_page and first_page))


def _with_leads(found: list[Unit], starts_document: bool) -> list[Unit]:
    """Mark the first unit of the document and the first one under each heading in the chunk:
    FAQ answers and manual sections state the answer first, then qualify it."""
    out = []
    for i, unit in enumerate(found):
        first = i == 0 and starts_document and not unit.context
        # a unit has a context only when its heading is in this chunk, so the first unit
        # under it is that section's first
        heading = bool(unit.context) and (i == 0 or found[i - 1].context != unit.context)
        out.append(replace(unit, lead=first or heading) if first or heading else unit)
    return out


def _without_cut_ends(found: list[Unit], starts_page: bool = False) -> list[Unit]:
    """A token-window chunk can start or end mid-sentence: those pieces are not units. A chunk
    that starts its page starts a sentence, whatever its case ("local($x) saves …")."""
    if found and not starts_page and found[0].kind == "sentence" and found[0].text[:1].islower():
        found = found[1:]
    if found and found[-1].kind == "sentence" and not found[-1].text.endswith(_ENDS):
        found = found[:-1]
    return found


def is_log_entry(text: str) -> bool:
    """A timed log entry ("23:50 Opened strainer cover. …")."""
    return bool(_LOG_ENTRY.match(text))


def first_sentence(text: str) -> str:
    """The first cleaned unit of ``text`` (used by snippets), or its cleaned start."""
    for kind, lines in _blocks(strip_front_matter(text)):
        found = (
            list(_table_units(lines))
            if kind == "table"
            else [t for t, _ in _text_units(lines, kind == "code")]
        )
        if found:
            return found[0]
    return clean_inline(text)
