"""Answer-unit vectors computed at ingest (late chunking), stored int8, read by the composer.

The composer scores the units (sentences, table rows) of the top hits by their cosine to the
question. Encoding them at query time costs a MiniLM batch per question; here they are computed
when the chunk is encoded: the units are the ones :mod:`edgerag.generation.units` makes of the
item (same code, same positions), each unit's characters are found in the embedded text (the
contextual header + the item text) and the encoder pools that span's token states from the
chunk's own forward pass (:meth:`TextEncoder.encode_with_spans`; encoders without token states
encode the spans separately). ``mode="separate"`` encodes each unit's cleaned text on its own
instead (exactly what the query-time path does; one extra encode per unit).

A unit's text is cleaned (markup off, a table row gets its headers), so its span is found by
aligning words: the longest run of the unit's words in the text, extended by the nearby runs.
A unit that cannot be aligned gets a separate encode.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from difflib import SequenceMatcher
from typing import Any

import numpy as np

from edgerag.encoders.base import TextEncoder
from edgerag.generation.units import Unit, units_of_item
from edgerag.store.ops import ItemRecord, UnitVectors

MODES = ("late", "separate", "off")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_MAX_GAP = 3  # words between two matched runs that still belong to one unit's span
_MIN_MATCHED = 0.6  # share of a unit's words found in its span

# (key, position) -> (text checksum, vector); what the composer asks the store for
Lookup = Callable[[Sequence[int]], Mapping[tuple[int, int], tuple[int, np.ndarray]]]


def checksum(text: str) -> int:
    """The unit text's check value stored beside its vector (crc32)."""
    return zlib.crc32(text.encode())


def item_units(item: ItemRecord) -> list[Unit]:
    """The composer's units of a stored item (what ``units(hit)`` gives for its hit)."""
    if item.modality not in ("text", "audio"):
        return []
    return units_of_item(item.text, item.metadata, item.char_start, item.page)


def align(found: Sequence[Unit], text: str) -> list[tuple[int, int] | None]:
    """Character span of each unit in ``text`` (``None`` when its words are not there)."""
    words = [(m.group(0).lower(), m.start(), m.end()) for m in _WORD.finditer(text)]
    lowered = [w for w, _, _ in words]
    out: list[tuple[int, int] | None] = []
    cursor = 0
    for unit in found:
        asked = [w.lower() for w in _WORD.findall(unit.text)]
        span = _span(asked, lowered, cursor) or _span(asked, lowered, 0)
        if span is None:
            out.append(None)
            continue
        first, last = span
        out.append((words[first][1], words[last][2]))
        cursor = last + 1
    return out


def _span(asked: list[str], words: list[str], start: int) -> tuple[int, int] | None:
    """First and last word index of ``asked`` in ``words[start:]``, or None."""
    if not asked:
        return None
    window = words[start : start + 3 * len(asked) + 40]
    blocks = [b for b in _matcher(asked, window).get_matching_blocks() if b.size]
    if not blocks:
        return None
    anchor = max(blocks, key=lambda b: b.size)
    lo, hi, matched = anchor.b, anchor.b + anchor.size, anchor.size
    for block in sorted(blocks, key=lambda b: abs(b.b - anchor.b)):
        if block is anchor:
            continue
        # a lone word across a gap is a chance match (a table's header row above its rows)
        if block.b >= hi and _near(block.b - hi, block.size):
            hi, matched = block.b + block.size, matched + block.size
        elif block.b + block.size <= lo and _near(lo - block.b - block.size, block.size):
            lo, matched = block.b, matched + block.size
    if matched < _MIN_MATCHED * len(asked):
        return None
    return start + lo, start + hi - 1


def _near(gap: int, size: int) -> bool:
    return gap == 0 or (gap <= _MAX_GAP and size >= 2)


def _matcher(a: list[str], b: list[str]) -> SequenceMatcher[str]:
    return SequenceMatcher(None, a, b, autojunk=False)


def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: ``codes * scales[:, None]`` gives the vectors back."""
    vectors = np.asarray(vectors, dtype=np.float32)
    peak = np.abs(vectors).max(axis=1) if len(vectors) else np.zeros(0, np.float32)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.rint(vectors / scales[:, None]), -127, 127).astype(np.int8)
    return codes, scales


def dequantize(codes: np.ndarray, scale: float) -> np.ndarray:
    return np.asarray(codes, dtype=np.float32) * np.float32(scale)


def encode_items(
    encoder: TextEncoder,
    items: Sequence[ItemRecord],
    embedded: Sequence[str],
    mode: str = "late",
) -> tuple[np.ndarray, UnitVectors | None]:
    """The items' vectors (of their ``embedded`` texts, as ``encoder.encode`` gives them) and
    their units' vectors. ``mode``: "late" (pooled from the same forward pass), "separate"
    (each unit's text encoded on its own) or "off" (no unit vectors)."""
    if mode not in MODES:
        raise ValueError(f"unknown unit-vector mode {mode!r}; choose one of {MODES}")
    per_item = [item_units(it) for it in items] if mode != "off" else []
    if not any(per_item):
        return encoder.encode(list(embedded)), None
    if mode == "separate":
        flat = [u.text for found in per_item for u in found]
        vectors = encoder.encode([*embedded, *flat])
        return vectors[: len(embedded)], _pack(encoder, items, per_item, vectors[len(embedded) :])
    spans, pending = _spans(items, embedded, per_item)
    vectors, pooled = encoder.encode_with_spans(list(embedded), spans)
    rows = [row for p in pooled for row in p]
    unit_rows = _with_separate(encoder, per_item, pending, rows)
    return vectors, _pack(encoder, items, per_item, unit_rows)


def _spans(
    items: Sequence[ItemRecord], embedded: Sequence[str], per_item: list[list[Unit]]
) -> tuple[list[list[tuple[int, int]]], list[bool]]:
    """Spans in each embedded text (the item's text follows its contextual header), and per
    unit (flattened) whether it could not be aligned and needs a separate encode."""
    spans: list[list[tuple[int, int]]] = []
    pending: list[bool] = []
    for item, text, found in zip(items, embedded, per_item, strict=True):
        shift = len(text) - len(item.text) if text.endswith(item.text) else 0
        aligned = align(found, text[shift:])
        spans.append([(a + shift, b + shift) for a, b in (s or (0, 0) for s in aligned)])
        pending.extend(s is None for s in aligned)
    return spans, pending


def _with_separate(
    encoder: TextEncoder, per_item: list[list[Unit]], pending: list[bool], rows: list[Any]
) -> np.ndarray:
    flat = [u for found in per_item for u in found]
    missing = [i for i, p in enumerate(pending) if p]
    out = np.array(rows, dtype=np.float32).reshape(len(flat), -1)
    if missing:
        out[missing] = encoder.encode([flat[i].text for i in missing])
    return out


def _pack(
    encoder: TextEncoder,
    items: Sequence[ItemRecord],
    per_item: list[list[Unit]],
    vectors: np.ndarray,
) -> UnitVectors:
    keys = [it.key for it, found in zip(items, per_item, strict=True) for _ in found]
    found = [u for units in per_item for u in units]
    codes, scales = quantize(vectors)
    return UnitVectors(
        encoder.id,
        encoder.version,
        keys=np.array(keys, dtype=np.int64),
        positions=np.array([u.position for u in found], dtype=np.int32),
        checks=np.array([checksum(u.text) for u in found], dtype=np.uint32),
        scales=scales,
        codes=codes,
    )
