"""Cited answers: retrieve → rerank → prompt → generate → ground, with stage timings.

``Engine.ask`` / ``Engine.ask_stream`` delegate here. Grounding is enforced in one place for
every generator: ``[n]`` markers are parsed from the answer, markers that point outside the
sources are removed, and each remaining one becomes a :class:`Citation` of ``sources[n-1]``.
When the wanted generator fails, the offline extractive answerer answers instead and the answer
is marked ``partial``.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgerag.errors import ConfigError, GenerationError
from edgerag.generation.base import Generator
from edgerag.generation.extractive import NOT_FOUND, ExtractiveGenerator, stream_words
from edgerag.generation.prompts import Prompt, PromptBuilder
from edgerag.generation.unit_vectors import Lookup
from edgerag.generation.units import split_sentences
from edgerag.retrieval.filters import Filters
from edgerag.retrieval.rerank.base import Reranker
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


# Shown beside an answer whose ``matched_by`` is "photo" (CLI and web page say the same).
PHOTO_MATCH_NOTE = "matched by what the photo looks like (no words on it): check the cited source"


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
        heard: the transcript of a spoken question (shown as "heard: …"), else ``None``.
        matched_by: "photo" when the answer rests on what a wordless photo looks like (the
            joint head's similarity; nothing was read on it): a visual match the user should
            check against the cited source, not a fact the question's words found. Else None.
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
    heard: str | None = None
    matched_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "answer": self.answer,
            "citations": [c.to_dict() for c in self.citations],
            "sources": [h.to_dict() for h in self.sources],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "partial": self.partial,
            "generator": self.generator,
        }
        if self.heard is not None:
            out["heard"] = self.heard
        if self.matched_by is not None:
            out["matched_by"] = self.matched_by
        return out


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


def renumber(text: str, sources: list[Hit]) -> tuple[str, list[Hit]]:
    """Number citations in order of first appearance: the first source cited becomes [1].

    Sources are reordered to match (cited ones first, in citation order, then the rest in
    their ranked order), so a reader sees [1], [2], [3] in the text, never 1, 3, 2. Markers
    naming no source are left for :func:`ground` to drop.
    """
    order: list[int] = []
    for match in _MARKER.finditer(text):
        for n in (int(x) for x in re.findall(r"\d+", match.group(1))):
            if 1 <= n <= len(sources) and n not in order:
                order.append(n)
    order += [n for n in range(1, len(sources) + 1) if n not in order]
    new = {old: i for i, old in enumerate(order, start=1)}

    def _sub(match: re.Match[str]) -> str:
        numbers = [int(x) for x in re.findall(r"\d+", match.group(1))]
        return "[" + ", ".join(str(new.get(n, 0)) for n in numbers) + "]"

    # Numbers naming no source become 0: still invalid, so ground() drops them.
    return _MARKER.sub(_sub, text), [sources[n - 1] for n in order]


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
    encoder: Any = None  # for the extractive composer's unit cosines
    unit_vectors: Lookup | None = None  # ... read from the store where ingest computed them
    query_vector: np.ndarray | None = None
    heard: str | None = None
    k: int = 5  # sources shown: the pool is cut to k (plus any cited beyond it) at the end
    photo: bool = False  # query_vector carries a wordless photo's head vector

    def extractive_text(self, generator: ExtractiveGenerator) -> str:
        composer = generator.for_photo() if self.photo else generator
        return composer.compose(
            self.prompt.question,
            self.prompt.sources,
            self.encoder,
            self.query_vector,
            self.k,
            self.unit_vectors,
        )


_EXTRACTIVE = ExtractiveGenerator()
COMPOSER_POOL = 10
# Weight of a wordless photo's head vector beside the typed question's vector, in the vector the
# composer scores units against (both live in the MiniLM space). Measured on the demo (battery
# photo + "what should I do about this?", all 466 units): the words alone rank the "E-120
# battery low" row 5th, weight 0.5 2nd, 1.0 and 1.5 1st, 2.0 4th (the part-number row 1st);
# `benchmarks/joint_bench.py --photo-weights`. 1.0 is also the search's own image weight.
PHOTO_WEIGHT = 1.0


def _reranker(engine: Engine) -> Reranker | None:
    """The reranker a user configured (``engine.reranker``), else none: the fitted fusion's
    order stands (it replaced the fixed 0.7/0.3 bi-encoder + BM25 rescoring, which was not
    fitted and outranked the entity signal)."""
    return getattr(engine, "reranker", None)


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


def photo_query_vector(
    engine: Engine, typed: str | None, photo: np.ndarray, weight: float = PHOTO_WEIGHT
) -> np.ndarray:
    """The vector a photo question's units are scored against: the typed words' vector plus
    ``weight`` × the photo's head vector, normalised (the photo alone without typed words)."""
    vec = weight * np.asarray(photo, dtype=np.float32)
    if typed and typed.strip():
        vec = vec + np.asarray(engine.encoder.encode([typed]), dtype=np.float32)[0]
    return vec / (np.linalg.norm(vec) or 1.0)


# Visual (EfficientNet-Lite0) cosine an image must reach before its words expand a photo
# question. Measured on the demo's pictures: the same thing shot again (rotated and cropped,
# darker) 0.89-0.98, schematics of one drawing style 0.74-0.84, unrelated pictures 0.10-0.44
# (the battery drawing's nearest demo image: 0.44). Below it the "neighbour" is only the least
# unlike picture, and its words (a video slide's "CLOSE V-05") would answer another question.
NEIGHBOUR_MIN_VISUAL = 0.6


def _neighbour_words(hits: list[Hit], n: int = 2) -> list[str]:
    """What people wrote or painted on the photo's nearest images (caption, OCR), never the
    model's label guesses: words that say what the photo shows, in the collection's language.
    Only images that look like the photo (:data:`NEIGHBOUR_MIN_VISUAL`) lend their words."""
    words = []
    near = [h for h in hits if h.scores.get("visual", 0.0) >= NEIGHBOUR_MIN_VISUAL]
    for hit in [h for h in near if h.modality == "image"][:n]:
        meta = hit.metadata or {}
        for key in ("caption", "ocr_text"):
            text = " ".join(str(meta.get(key) or "").split())
            if text and text not in words:
                words.append(text)
    return words


def _dedup(hits: list[Hit]) -> list[Hit]:
    seen: set[Any] = set()
    return [h for h in hits if not (h.key in seen or seen.add(h.key))]


def _media_question_sources(
    engine: Engine,
    q: Query,
    question: str,
    hits: list[Hit],
    k: int,
    filters: Filters | None,
    mode: str,
    photo_words: bool = True,
) -> list[Hit]:
    """Sources for a photo or voice question: the manuals, found with the question's words.

    The fused search (text + visual) finds the photo's neighbours; their words and what was
    read or heard expand the question, and a text search over text items brings the procedures
    and rows that answer it. The answer must come from those, not from the photo's own caption,
    so text items lead; the best media hits follow while there is room.
    """
    expanded = " ".join([question, *(_neighbour_words(hits) if q.image is not None else [])])
    text_filters = {"modality": "text", **(filters or {})}  # a user's modality filter wins
    found = engine.search(Query(text=expanded), k=k, filters=text_filters, mode=mode).hits
    if q.image is not None and not photo_words:
        # Nothing was read on the photo, so the words search knows only the typed question
        # ("what should I do about this?"). The photo with the typed words, through the joint
        # head's vector in the text space, finds the passages about what it shows: they lead.
        # (OCR already read nothing on these bytes: not run again, ~0.15 s saved)
        photo_q = Query(text=q.text, image=q.image, weights={"image": PHOTO_WEIGHT})
        by_photo = engine.search(photo_q, k=k, filters=text_filters, mode=mode, ocr=False).hits
        found = _dedup([*by_photo[: max(2, k // 2)], *found])[:k]
    media = [h for h in hits if h.modality != "text" and h.key not in {t.key for t in found}]
    if not found:
        return hits[:k]
    return found[: max(1, k - 1)] + media[:1] if media else found[:k]


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
    # The extractive composer reads units from a wider pool than the k sources it shows: the
    # answer often sits in the 6th-10th hit (a table row, a log entry). Cited hits are kept.
    pool = max(k, COMPOSER_POOL) if isinstance(generator or _EXTRACTIVE, ExtractiveGenerator) else k
    top_n = reranker.top_n if reranker is not None else pool
    response = engine.search(q, k=max(pool, top_n), filters=filters, mode=mode)
    t_ret = time.perf_counter()
    if q.image is None and q.audio is None:
        hits = response.hits[:pool]
        if reranker is not None:
            hits = reranker.rerank(q.text or "", response.hits, engine, qvec)[:pool]
        question = q.text or ""
    else:
        question = " ".join(response.query_texts.values()) or f"(question: {q.describe()})"
        photo_words = bool(response.query_texts.get("image"))
        hits = _media_question_sources(
            engine, q, question, response.hits, pool, filters, mode, photo_words
        )
    t_rr = time.perf_counter()
    if isinstance(generator or _EXTRACTIVE, ExtractiveGenerator):
        # The extractive composer quotes the sources themselves: an LLM's token budget would
        # only drop the last of them (and tokenising ten sources cost 1.6 ms of the path).
        prompt = Prompt(question, list(hits), [])
    else:
        prompt = _builder(engine).build(question, hits)
    t_pr = time.perf_counter()
    stages = {
        "encode": (t_enc - t0) * 1000 + response.timings_ms.get("encode", 0.0),
        "search": (t_ret - t_enc) * 1000 - response.timings_ms.get("encode", 0.0),
        "prompt": (t_pr - t_rr) * 1000,
    }
    timings = {"retrieve": (t_ret - t0) * 1000, "rerank": (t_rr - t_ret) * 1000}
    partial = bool(getattr(response, "partial", False))
    ctx = _Context(prompt, generator or _EXTRACTIVE, partial, timings, stages, t0)
    ctx.encoder = getattr(engine, "encoder", None)
    ctx.unit_vectors = _unit_lookup(engine, ctx.encoder)
    ctx.query_vector = qvec if q.image is None and q.audio is None else None
    photo = getattr(response, "photo_vector", None)  # (a fleet response carries none)
    if photo is not None and not response.query_texts.get("image"):
        # Nothing read on the photo: its head vector speaks for it in the units' scores too
        # (beside the typed or spoken words, which are all query_texts holds then).
        words = " ".join(response.query_texts.values())
        ctx.query_vector = photo_query_vector(engine, words, photo)
        ctx.photo = True
    ctx.heard = response.query_texts.get("audio") if q.audio is not None else None
    ctx.k = k
    return ctx


def _unit_lookup(engine: Any, encoder: Any) -> Lookup | None:
    """The stored unit vectors of the engine's encoder (a stale encoder's are not read)."""
    store = getattr(engine, "store", None)
    if store is None or encoder is None or not hasattr(store, "unit_vectors"):
        return None
    return functools.partial(store.unit_vectors, encoder=encoder.id, version=encoder.version)


def _generate(ctx: _Context) -> str:
    if isinstance(ctx.generator, ExtractiveGenerator):
        return ctx.extractive_text(ctx.generator)
    return ctx.generator.generate(ctx.prompt)


def sources_of(ctx: _Context) -> list[Hit]:
    return ctx.prompt.sources


def _finish(ctx: _Context, text: str, t_gen: float, renumbered: bool | None = None) -> Answer:
    """``renumbered``: None = number citations in order of appearance now; True = done already
    (extractive stream); False = keep the ranked numbering (a streamed LLM answer)."""
    if renumbered is None:
        text, ctx.prompt.sources = renumber(text, ctx.prompt.sources)
    if renumbered is not False:  # cited sources come first: cut the rest of the pool to k
        cited = {int(n) for m in _MARKER.finditer(text) for n in re.findall(r"\d+", m.group(1))}
        ctx.prompt.sources = ctx.prompt.sources[: max(ctx.k, max(cited, default=0))]
        # (the composer cites at most k sources, so this keeps exactly k)
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
        ctx.heard,
        "photo" if ctx.photo and answer and answer != NOT_FOUND else None,
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
        text = _generate(ctx)
    except GenerationError as exc:
        if ctx.generator is _EXTRACTIVE:
            raise
        _fallback(ctx, exc)
        text = ctx.extractive_text(_EXTRACTIVE)
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

    Retrieval runs when the iterator is first advanced; errors in it raise from there. The
    extractive answer is composed before the ``sources`` event so its citations can be numbered
    in order of appearance; a streamed LLM answer keeps the sources' ranked numbering (its
    tokens are out before the order of its citations is known).
    """
    ctx = _prepare(engine, query, k, filters, mode, generator)
    t_gen = time.perf_counter()
    composed = None
    if ctx.prompt.sources and isinstance(ctx.generator, ExtractiveGenerator):
        composed, ctx.prompt.sources = renumber(
            ctx.extractive_text(ctx.generator), ctx.prompt.sources
        )
        cited = {int(n) for m in _MARKER.finditer(composed) for n in re.findall(r"\d+", m.group(1))}
        ctx.prompt.sources = ctx.prompt.sources[: max(ctx.k, max(cited, default=0))]
        # (the composer cites at most k sources, so this keeps exactly k)
    first: dict[str, Any] = {
        "type": "sources",
        "sources": [h.to_dict() for h in ctx.prompt.sources],
    }
    if ctx.heard is not None:
        first["heard"] = ctx.heard
    yield first
    pieces: list[str] = []
    if not ctx.prompt.sources:
        pieces.append(NOT_FOUND)
        yield {"type": "token", "text": NOT_FOUND}
    elif composed is not None:
        for piece in stream_words(composed):
            pieces.append(piece)
            yield {"type": "token", "text": piece}
    else:
        yield from _stream_tokens(ctx, pieces)
    answer = _finish(ctx, "".join(pieces), t_gen, renumbered=composed is not None)
    done = answer.to_dict()
    done.pop("sources")
    yield {"type": "done", **done}


def _stream_tokens(ctx: _Context, pieces: list[str]) -> Iterator[dict[str, Any]]:
    try:
        stream = (
            stream_words(ctx.extractive_text(ctx.generator))
            if isinstance(ctx.generator, ExtractiveGenerator)
            else ctx.generator.stream(ctx.prompt)
        )
        for piece in stream:
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
        for piece in stream_words(ctx.extractive_text(_EXTRACTIVE)):
            pieces.append(piece)
            yield {"type": "token", "text": piece}
