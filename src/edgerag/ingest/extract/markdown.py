"""Markdown (.md .markdown) parsed with markdown-it-py into structured blocks.

Front matter becomes document metadata (and the title) and never text; headings become the
section path; tables become rows that keep their headers; lists and code blocks stay whole.
Inline markup (``**bold**``, links, code spans) is reduced to its text.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from edgerag._optional import require
from edgerag.errors import InputError
from edgerag.ingest.extract import Extracted
from edgerag.ingest.extract.text import decode_text, normalize_text
from edgerag.ingest.limits import Limits
from edgerag.ingest.structure import Block, assemble_pages, table_block
from edgerag.types import Modality

logger = logging.getLogger(__name__)

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
# Keys extraction itself sets; front matter may not overwrite them.
RESERVED = frozenset({"format", "encoding", "chars"})


def extract_markdown(source: str, data: bytes, limits: Limits, mime: str) -> Extracted:
    """Parse a Markdown file into blocks under their headings."""
    text, encoding = decode_text(source, data)
    text = normalize_text(text, keep_indent=True)
    front, body = split_front_matter(source, text)
    blocks = parse_blocks(body)
    title = _str(front.get("title")) or _first_heading(blocks)
    if not any(b.text.strip() for b in blocks if b.kind != "heading"):
        if not any(b.text.strip() for b in blocks):
            raise InputError(source, "no text (only front matter or whitespace)")
    pages = assemble_pages(blocks)
    metadata: dict[str, Any] = {k: v for k, v in front.items() if k not in RESERVED}
    metadata.update(
        {"format": "markdown", "encoding": encoding, "chars": len(pages[0][1]), "title": title}
    )
    return Extracted(source, Modality.TEXT, mime, title, pages, metadata, blocks=blocks)


def split_front_matter(source: str, text: str) -> tuple[dict[str, Any], str]:
    """YAML front matter (``---`` … ``---``) as a JSON-safe dict, and the text after it."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    yaml = require("yaml")
    try:
        loaded = yaml.safe_load(match.group(1) or "")
    except yaml.YAMLError as exc:
        # A broken header must not end up as text (or lose the file): keep the body.
        logger.warning("%s: front matter is not valid YAML (%s); ignored", source, exc)
        loaded = None
    front = {str(k): _json_safe(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
    return front, text[match.end() :]


def parse_blocks(text: str) -> list[Block]:
    """Blocks of a Markdown body in document order, each with its heading path."""
    markdown_it = require("markdown_it")
    parser = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
    tokens = parser.parse(text)
    blocks: list[Block] = []
    headings: list[tuple[int, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        section = tuple(h for _, h in headings)
        end = _close(tokens, i)
        if tok.type == "heading_open":
            level = int(tok.tag[1])
            heading = _inline(tokens[i + 1])
            headings = [h for h in headings if h[0] < level] + [(level, heading)]
            blocks.append(Block("heading", heading, section))
        elif tok.type == "paragraph_open":
            blocks.append(Block("text", _inline(tokens[i + 1]), section))
        elif tok.type in ("fence", "code_block"):
            blocks.append(Block("code", tok.content.strip("\n"), section))
        elif tok.type in ("bullet_list_open", "ordered_list_open"):
            blocks.append(Block("list", _list_text(tokens[i:end]), section))
        elif tok.type == "table_open":
            block = table_block(_table_rows(tokens[i:end]), section)
            if block is not None:
                blocks.append(block)
        elif tok.type == "blockquote_open":
            quoted = [_inline(t) for t in tokens[i:end] if t.type == "inline"]
            blocks.append(Block("text", "\n".join(q for q in quoted if q), section))
        elif tok.type == "html_block":
            stripped = _TAGS.sub(" ", tok.content)
            blocks.append(Block("text", " ".join(stripped.split()), section))
        i = end + 1
    return [b for b in blocks if b.text.strip()]


def _close(tokens: list[Any], i: int) -> int:
    """Index of the token closing the block opened at ``i`` (``i`` itself for leaf tokens)."""
    if tokens[i].nesting != 1:
        return i
    depth = 0
    for j in range(i, len(tokens)):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return len(tokens) - 1


def _inline(token: Any) -> str:
    """Plain text of an inline token: markup dropped, soft breaks kept as spaces."""
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" " if child.type == "softbreak" else "\n")
        elif child.type == "image":
            parts.append(child.content)
        elif child.type == "html_inline":
            continue
    return "".join(parts).strip()


def _list_text(tokens: list[Any]) -> str:
    """A (nested) list as lines ``"- item"`` / ``"2. item"``, indented by depth."""
    lines: list[str] = []
    markers: list[str] = []
    counters: list[int] = []
    depth = -1
    pending = ""
    for tok in tokens:
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
            ordered = tok.type == "ordered_list_open"
            start = int(tok.attrs.get("start", 1)) if ordered else 0
            markers.append("." if ordered else "-")
            counters.append(start)
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
            markers.pop()
            counters.pop()
        elif tok.type == "list_item_open":
            if markers[-1] == ".":
                pending = f"{counters[-1]}. "
                counters[-1] += 1
            else:
                pending = "- "
        elif tok.type == "inline":
            indent = "  " * depth
            lines.append(f"{indent}{pending or '  '}{_inline(tok)}")
            pending = ""
        elif tok.type in ("fence", "code_block"):
            lines.extend("  " * (depth + 1) + line for line in tok.content.strip("\n").split("\n"))
    return "\n".join(lines)


def _table_rows(tokens: list[Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    for tok in tokens:
        if tok.type == "tr_open":
            rows.append([])
        elif tok.type == "inline" and rows:
            rows[-1].append(_inline(tok))
    return rows


def _first_heading(blocks: list[Block]) -> str | None:
    return next((b.text for b in blocks if b.kind == "heading"), None)


def _str(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _json_safe(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)
