"""Cited answers: retrieve → rerank → prompt → generate → ground, with stage timings.

``Engine.ask`` / ``Engine.ask_stream`` delegate here. Grounding is enforced in one place for
every generator: ``[n]`` markers are parsed from the answer, markers that point outside the
sources are removed, and each remaining one becomes a :class:`Citation` of ``sources[n-1]``.
When the wanted generator fails, the offline extractive answerer answers instead and the answer
is marked ``partial``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgerag.errors import ConfigError, GenerationError
from edgerag.generation.base import Generator
from edgerag.generation.extractive import NOT_FOUND, ExtractiveGenerator, split_sentences
from edgerag.generation.prompts import Prompt, PromptBuilder
from edgerag.retrieval.filters import Filters
from edgerag.retrieval.rerank.base import Reranker
from edgerag.retrieval.rerank.hybrid import HybridReranker
from edgerag.types import Hit, Query

if TYPE_CHECKING:
    from edgerag.engine import Engine

logger = logging.getLogger(__name__)

_MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
SNIPPET_CHARS = 240


@dataclass
class Citation:
    """One cited source: ``n`` is its number in ``Answer.sources`` (1-based)."""

    n: int
    id: str
    doc_id: str
    source: str
    modality: str
    page: int | None
    t_start: float | None
    t_end: float | None
    snippet: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "id": self.id,
            "doc_id": self.doc_id,
            "source": self.source,
            "modality": self.modality,
            "page": self.page,
            "t_start": self.t_start,
            "t_end": self.t_end,
            "snippet": self.snippet,
        }


@dataclass
class Answer:
    """A cited answer.

    Attributes:
        answer: the text, with ``[n]`` markers.
        citations: one per distinct cited source, in order of first citation.
        sources: what the generator was given, numbered 1..n in this order.
        timings_ms: retrieve, rerank, generate, total.
        partial: a wanted source or generator was unavailable (see ``errors``).
        generator: "extractive", "openai:<model>" or "llamacpp".
        errors: why the answer is partial (not serialised).
        stages_ms: finer timings: encode, search, prompt (not serialised).
    """

    answer: str
    citations: list[Citation]
    sources: list[Hit]
    timings_ms: dict[str, float]
    partial: bool
    generator: str
    errors: list[str] = field(default_factory=list)
    stages_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "citations": [c.to_dict() for c in self.citations],
            "sources": [h.to_dict() for h in self.sources],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "partial": self.partial,
            "generator": self.generator,
        }


# ----------------------------------------------------------------------------- grounding
def _snippet(claim: str, hit: Hit) -> str:
    """The quoted sentence when the claim is verbatim from the source, else the source's start."""
    flat_source = " ".join(hit.text.split())
    sentences = split_sentences(claim)
    if sentences and sentences[-1] in flat_source:
        return sentences[-1][:SNIPPET_CHARS]
    return flat_source[:SNIPPET_CHARS]


def _citation(n: int, hit: Hit, claim: str) -> Citation:
    return Citation(
        n,
        hit.id,
        hit.doc_id,
        hit.source,
        hit.modality,
        hit.page,
        hit.t_start,
        hit.t_end,
        _snippet(claim, hit),
    )


def ground(text: str, sources: list[Hit]) -> tuple[str, list[Citation]]:
    """Keep only ``[n]`` markers that name a source; return the cleaned text and citations."""
    citations: dict[int, Citation] = {}
    out: list[str] = []
    last = 0
    for match in _MARKER.finditer(text):
        numbers = [int(x) for x in re.findall(r"\d+", match.group(1))]
        valid = list(dict.fromkeys(n for n in numbers if 1 <= n <= len(sources)))
        if len(valid) != len(numbers):
            logger.info("dropped citation(s) %s: only %d sources", match.group(0), len(sources))
        claim = text[last : match.start()]
        for n in valid:
            citations.setdefault(n, _citation(n, sources[n - 1], claim))
        out.append(text[last : match.start()])
        out.append(f"[{', '.join(map(str, valid))}]" if valid else "")
        last = match.end()
    out.append(text[last:])
    cleaned = re.sub(r"[ \t]{2,}", " ", "".join(out)).strip()
    return cleaned, list(citations.values())


# ----------------------------------------------------------------------------- pipeline
@dataclass
class _Context:
    """Everything up to the prompt, shared by ask and ask_stream."""

    prompt: Prompt
    generator: Generator
    partial: bool
    timings: dict[str, float]
    stages: dict[str, float]
    t0: float
    errors: list[str] = field(default_factory=list)


_EXTRACTIVE = ExtractiveGenerator()


def _reranker(engine: Engine) -> Reranker:
    found = getattr(engine, "reranker", None)
    if found is None:
        found = HybridReranker()
        engine.reranker = found  # type: ignore[attr-defined]
    return found  # type: ignore[no-any-return]


def _builder(engine: Engine) -> PromptBuilder:
    found = getattr(engine, "prompt_builder", None)
    if found is None:
        found = PromptBuilder()
        engine.prompt_builder = found  # type: ignore[attr-defined]
    return found  # type: ignore[no-any-return]


def _query_vector(engine: Engine, q: Query, mode: str) -> np.ndarray | None:
    """The text query vector (memoised, so the retriever reuses it); none for BM25-only."""
    if mode == "bm25" or not (q.text or "").strip():
        return None
    cache = getattr(engine, "cache", None)
    if cache is not None:
        return cache.query_vector(q.text or "")  # type: ignore[no-any-return]
    return np.asarray(engine.encoder.encode([q.text or ""]))[0]


def _prepare(
    engine: Engine,
    query: str | Query,
    k: int,
    filters: Filters | None,
    mode: str,
    generator: Generator | None,
) -> _Context:
    t0 = time.perf_counter()
    if not 1 <= k <= 100:
        raise ConfigError(f"k must be between 1 and 100 sources, got {k}")
    q = Query.of(query)
    reranker = _reranker(engine)
    qvec = _query_vector(engine, q, mode)
    t_enc = time.perf_counter()
    response = engine.search(q, k=max(k, reranker.top_n), filters=filters, mode=mode)
    t_ret = time.perf_counter()
    if q.image is None and q.audio is None:
        hits = reranker.rerank(q.text or "", response.hits, engine, qvec)[:k]
        question = q.text or ""
    else:
        # A photo or voice question: the fused retrieval order already weighs what the text
        # reranker cannot see (visual similarity); the answerer gets what was read and heard.
        hits = response.hits[:k]
        question = " ".join(response.query_texts.values()) or f"(question: {q.describe()})"
    t_rr = time.perf_counter()
    prompt = _builder(engine).build(question, hits)
    t_pr = time.perf_counter()
    stages = {
        "encode": (t_enc - t0) * 1000 + response.timings_ms.get("encode", 0.0),
        "search": (t_ret - t_enc) * 1000 - response.timings_ms.get("encode", 0.0),
        "prompt": (t_pr - t_rr) * 1000,
    }
    timings = {"retrieve": (t_ret - t0) * 1000, "rerank": (t_rr - t_ret) * 1000}
    partial = bool(getattr(response, "partial", False))
    return _Context(prompt, generator or _EXTRACTIVE, partial, timings, stages, t0)


def _finish(ctx: _Context, text: str, t_gen: float) -> Answer:
    answer, citations = ground(text, ctx.prompt.sources)
    now = time.perf_counter()
    ctx.timings["generate"] = (now - t_gen) * 1000
    ctx.timings["total"] = (now - ctx.t0) * 1000
    return Answer(
        answer or NOT_FOUND,
        citations,
        ctx.prompt.sources,
        ctx.timings,
        ctx.partial,
        ctx.generator.name,
        ctx.errors,
        ctx.stages,
    )


def _fallback(ctx: _Context, exc: GenerationError) -> None:
    logger.warning("generator %s failed (%s); answering extractively", ctx.generator.name, exc)
    ctx.errors.append(f"{ctx.generator.name}: {exc}")
    ctx.partial = True
    ctx.generator = _EXTRACTIVE


def ask(
    engine: Engine,
    query: str | Query,
    k: int = 5,
    filters: Filters | None = None,
    mode: str = "hybrid",
    generator: Generator | None = None,
) -> Answer:
    """Answer ``query`` from the collection with citations (see ``Engine.ask``)."""
    ctx = _prepare(engine, query, k, filters, mode, generator)
    t_gen = time.perf_counter()
    if not ctx.prompt.sources:  # nothing retrieved: no generator may answer from nothing
        return _finish(ctx, NOT_FOUND, t_gen)
    try:
        text = ctx.generator.generate(ctx.prompt)
    except GenerationError as exc:
        if ctx.generator is _EXTRACTIVE:
            raise
        _fallback(ctx, exc)
        text = _EXTRACTIVE.generate(ctx.prompt)
    return _finish(ctx, text, t_gen)


def ask_stream(
    engine: Engine,
    query: str | Query,
    k: int = 5,
    filters: Filters | None = None,
    mode: str = "hybrid",
    generator: Generator | None = None,
) -> Iterator[dict[str, Any]]:
    """Events: ``sources`` first, then ``token`` pieces, then ``done`` (see ``Engine.ask_stream``).

    Retrieval runs when the iterator is first advanced; errors in it raise from there.
    """
    ctx = _prepare(engine, query, k, filters, mode, generator)
    yield {"type": "sources", "sources": [h.to_dict() for h in ctx.prompt.sources]}
    t_gen = time.perf_counter()
    pieces: list[str] = []
    if not ctx.prompt.sources:
        pieces.append(NOT_FOUND)
        yield {"type": "token", "text": NOT_FOUND}
    else:
        yield from _stream_tokens(ctx, pieces)
    answer = _finish(ctx, "".join(pieces), t_gen)
    done = answer.to_dict()
    done.pop("sources")
    yield {"type": "done", **done}


def _stream_tokens(ctx: _Context, pieces: list[str]) -> Iterator[dict[str, Any]]:
    try:
        for piece in ctx.generator.stream(ctx.prompt):
            pieces.append(piece)
            yield {"type": "token", "text": piece}
    except GenerationError as exc:
        if ctx.generator is _EXTRACTIVE:
            raise
        if pieces:  # part of the answer is out; keep it and say it is incomplete
            logger.warning("generator %s failed mid-answer: %s", ctx.generator.name, exc)
            ctx.errors.append(f"{ctx.generator.name}: {exc}")
            ctx.partial = True
            return
        _fallback(ctx, exc)
        for piece in _EXTRACTIVE.stream(ctx.prompt):
            pieces.append(piece)
            yield {"type": "token", "text": piece}
