"""Scrubbing an extracted document in place, before it is chunked, embedded or indexed.

Text documents are scrubbed page by page (and block by block when the format has structure)
BEFORE chunking, so a value can never be split across two chunks and escape; media items
(OCR text, transcripts, captions, EXIF) are scrubbed item by item, with their metadata.
"""

from __future__ import annotations

from typing import Any

from edgerag.ingest.structure import assemble_pages
from edgerag.privacy.pii import Detector, Scrubber

_DETECTORS: dict[tuple[str, ...], Detector] = {}


def scrubber_for(regions: tuple[str, ...]) -> Scrubber:
    """A fresh counting scrubber; the detector (compiled patterns) is shared per region set."""
    if regions not in _DETECTORS:
        _DETECTORS[regions] = Detector(regions=regions)
    return Scrubber(_DETECTORS[regions])


def scrub_value(value: Any, scrub: Scrubber) -> Any:
    """Strings anywhere inside JSON-like metadata, scrubbed."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list | tuple):
        return type(value)(scrub_value(v, scrub) for v in value)
    if isinstance(value, dict):
        return {k: scrub_value(v, scrub) for k, v in value.items()}
    return value


def scrub_extracted(extracted: Any, scrub: Scrubber) -> None:
    """An :class:`~edgerag.ingest.extract.Extracted`: title, metadata, blocks and pages."""
    extracted.title = scrub(extracted.title) if extracted.title else extracted.title
    extracted.metadata = scrub_value(extracted.metadata, scrub)
    if not extracted.blocks:
        extracted.pages = [(page, scrub(text)) for page, text in extracted.pages]
        return
    for block in extracted.blocks:
        block.text = scrub(block.text)
        block.section = tuple(scrub(s) for s in block.section)
        block.headers = [scrub(h) for h in block.headers]
    # ``pages`` must stay exactly the blocks joined (item offsets point into it).
    rebuilt = dict(assemble_pages(extracted.blocks))
    extracted.pages = [
        (page, rebuilt[page] if page in rebuilt else scrub(text)) for page, text in extracted.pages
    ]


def scrub_media(document: Any, scrub: Scrubber) -> None:
    """A :class:`~edgerag.ingest.media.MediaDocument`: every item's text and metadata.

    Word timings of a transcript (``words``) are dropped from an item whose text had anything
    redacted: single words cannot be scrubbed reliably (a phone number spans several)."""
    document.title = scrub(document.title) if getattr(document, "title", None) else None
    document.metadata = scrub_value(getattr(document, "metadata", {}), scrub)
    for item in document.items:
        before = sum(scrub.counts.values())
        item.text = scrub(item.text) if item.text else item.text
        redacted = sum(scrub.counts.values()) > before
        meta = dict(item.metadata)
        words = meta.pop("words", None)
        meta = scrub_value(meta, scrub)
        if words is not None and not redacted:
            meta["words"] = words
        item.metadata = meta
