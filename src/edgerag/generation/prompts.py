"""Prompt builder: system line, question, numbered sources within a token budget.

Tokens are counted with the real all-MiniLM-L6-v2 WordPiece tokenizer (the one the encoder
uses) when the ``onnx`` extra is installed, else with a regex that slightly undercounts. It is
not the LLM's own tokenizer (that is unknowable for a remote endpoint), so the default budget
keeps a margin below common 4k contexts.

Multimodal items are rendered as text: OCR text and labels/caption for images, the transcript
with its time range for audio, the timestamp for video frames.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgerag.errors import ConfigError, MissingExtraError
from edgerag.types import Hit

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are an industrial AI assistant. Use the provided documents verbatim when answering. "
    "Cite every statement with the number of the document it comes from, like [1] or [2]. "
    "If the documents do not contain the answer, say that you could not find it in the "
    "documents; do not invent one."
)
_REGEX_TOKEN = re.compile(r"\w+|[^\w\s]")


class TokenCounter:
    """Counts and truncates text in tokens of the MiniLM WordPiece tokenizer (regex fallback)."""

    def __init__(self, tokenizer: Any | None = None) -> None:
        self._tok = tokenizer
        self.kind = "wordpiece" if tokenizer is not None else "regex"

    @classmethod
    @functools.cache
    def default(cls) -> TokenCounter:
        """The shared counter: MiniLM's tokenizer, or the regex when the onnx extra is absent."""
        try:
            from edgerag.encoders.minilm import load_tokenizer

            return cls(load_tokenizer(max_tokens=None))
        except MissingExtraError as exc:
            logger.info("prompt token budget uses a regex count: %s", exc)
            return cls(None)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        if self._tok is None:
            return [m.span() for m in _REGEX_TOKEN.finditer(text)]
        enc = self._tok.encode(text, add_special_tokens=False)
        return [(s, e) for s, e in enc.offsets if e > s]

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Token counts of several texts in one tokenizer call (batched in Rust)."""
        if self._tok is None:
            return [len(_REGEX_TOKEN.findall(t)) for t in texts]
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def count(self, text: str) -> int:
        if self._tok is None:
            return len(_REGEX_TOKEN.findall(text))
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` with at most ``max_tokens`` tokens, cut at a token end."""
        if max_tokens <= 0:
            return ""
        spans = self._spans(text)
        if len(spans) <= max_tokens:
            return text
        return text[: spans[max_tokens - 1][1]]


@dataclass
class Prompt:
    """What every generator receives.

    Attributes:
        question: the user's question (text part of the query).
        sources: the retrieved items given to the generator, numbered 1..n in this order.
        messages: OpenAI-style chat messages (system + user).
        tokens: tokens in ``messages`` (see :class:`TokenCounter`).
        truncated: a source was shortened or dropped to fit the budget.
    """

    question: str
    sources: list[Hit]
    messages: list[dict[str, str]]
    tokens: int = 0
    truncated: bool = False
    rendered: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The messages as one plain string (for completion-style backends)."""
        return "\n\n".join(m["content"] for m in self.messages)


def _where(hit: Hit) -> str:
    name = Path(hit.source).name or hit.source
    parts = [name]
    if hit.page:
        parts.append(f"page {hit.page}")
    if hit.t_start is not None:
        end = hit.t_end if hit.t_end is not None else hit.t_start
        parts.append(f"{hit.t_start:.1f}–{end:.1f} s")
    return ", ".join(parts)


def _confident(labels: Any) -> list[str]:
    """Label names to show: model guesses (``[name, p]``) at or above the display threshold;
    plain names (labels a person gave, no probability) as they are."""
    from edgerag.ingest.media import LABEL_TEXT_MIN_PROB

    out = []
    for entry in labels if isinstance(labels, list | tuple) else [labels]:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, list | tuple) and len(entry) == 2:
            name, p = entry
            if isinstance(p, int | float) and p >= LABEL_TEXT_MIN_PROB:
                out.append(str(name))
    return out


def _as_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def render_source(hit: Hit) -> str:
    """One source as text: modality, provenance, then content (OCR/labels/transcript)."""
    meta = hit.metadata or {}
    body = " ".join(hit.text.split())
    if hit.modality == "image":
        lines = [f"(image: {_where(hit)})"]
        for key, label in (("caption", "Caption"), ("labels", "Labels"), ("alt", "Alt text")):
            value = _confident(meta[key]) if key == "labels" and meta.get(key) else meta.get(key)
            if value:
                lines.append(f"{label}: {_as_text(value)}")
        ocr = meta.get("ocr_text") or body
        if ocr:
            lines.append(f"Text in the image: {' '.join(str(ocr).split())}")
        return "\n".join(lines)
    if hit.modality in ("audio", "video"):
        kind = "audio" if hit.modality == "audio" else "video"
        lines = [f"({kind}: {_where(hit)})"]
        if _confident(meta.get("labels") or []):
            lines.append(f"Labels: {_as_text(_confident(meta['labels']))}")
        transcript = meta.get("transcript") or body
        if transcript:
            lines.append(f"Transcript: {' '.join(str(transcript).split())}")
        return "\n".join(lines)
    return f"({_where(hit)})\n{body}"


class PromptBuilder:
    """Builds the prompt within ``max_tokens``, keeping the best-ranked sources first.

    Args:
        max_tokens: budget for the whole prompt (system + question + sources).
        min_source_tokens: a source that would get fewer tokens than this is dropped, not cut.
        system: the system line.
        counter: token counter; the MiniLM tokenizer by default.
    """

    def __init__(
        self,
        max_tokens: int = 2048,
        min_source_tokens: int = 24,
        system: str = SYSTEM_PROMPT,
        counter: TokenCounter | None = None,
    ) -> None:
        if max_tokens < 64:
            raise ConfigError(f"prompt max_tokens must be >= 64, got {max_tokens}")
        self.max_tokens = max_tokens
        self.min_source_tokens = min_source_tokens
        self.system = system
        self.counter = counter or TokenCounter.default()

    def build(self, question: str, hits: Sequence[Hit]) -> Prompt:
        """Number ``hits`` 1..n in order and fit as many as the budget allows.

        Pieces are counted separately (one batched call for the sources) and summed: WordPiece
        pre-tokenizes on whitespace, so counts add up across the blank lines joining them.
        """
        head = f"Question: {question}\n\nDocuments:\n"
        tail = "\n\nAnswer the question using only these documents, citing them as [n]."
        system_tokens, frame_tokens = self.counter.count_many([self.system, head + tail])
        used = system_tokens + frame_tokens
        if used > self.max_tokens:
            raise ConfigError(
                f"the question alone needs ~{used} tokens, over the {self.max_tokens}-token budget"
            )
        texts = [f"[{n}] {render_source(hit)}" for n, hit in enumerate(hits, start=1)]
        counts = self.counter.count_many(texts) if texts else []
        kept: list[Hit] = []
        rendered: list[str] = []
        truncated = False
        for hit, text, need in zip(hits, texts, counts, strict=True):
            room = self.max_tokens - used
            if need > room:
                truncated = True
                if room - 2 < self.min_source_tokens:
                    break
                text = self.counter.truncate(text, room - 2) + " …"
                need = self.counter.count(text)
            kept.append(hit)
            rendered.append(text)
            used += need
        user = head + "\n\n".join(rendered) + tail
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": user}]
        return Prompt(question, kept, messages, used, truncated, rendered)
