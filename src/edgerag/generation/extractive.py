"""The offline answerer (composer v2): picks the sentences and table rows that answer, cited.

No generative model is needed. Candidate units are the cleaned sentences and table rows of the
top sources (:mod:`edgerag.generation.units`), each scored by

* meaning: the MiniLM bi-encoder cosine of the unit to the question, all units of an answer
  encoded in one batch (when an encoder is given; otherwise this term is left out);
* lexical coverage: the share of the question's content terms (IDF-weighted over the candidate
  units, light suffix stemming) that the unit contains;
* entity coverage: the share of the question's identifiers (codes, tags, part numbers) that the
  unit names, plus a bonus when the question asks for a value/part number and the unit has one;
* source relevance and rank, and position (FAQ answers and sections lead with the answer);
* when: a question naming a date or shift ("the night shift of 14 March 2026") prefers units
  whose dated header says that day and shift and penalises those of another day
  (:mod:`edgerag.generation.when`); those words are left out of the lexical coverage.

The answer is the best unit, plus the next ones while they stay close to it, each followed by the
``[n]`` of its source. "Not found" when no unit passes the support test (see the thresholds).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from edgerag.generation import when
from edgerag.generation.base import Generator
from edgerag.generation.prompts import Prompt
from edgerag.generation.unit_vectors import Lookup, checksum
from edgerag.generation.units import Unit, is_log_entry, split_sentences, units
from edgerag.retrieval.text_query import STOPWORDS
from edgerag.types import Hit

logger = logging.getLogger(__name__)

__all__ = ["NOT_FOUND", "ExtractiveGenerator", "content_terms", "split_sentences"]

NOT_FOUND = "I could not find an answer to that in the indexed documents."

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_EXTRA_STOP = frozenset(
    "there their about into does did get use using way want need was were has have been".split()
)
# Identifiers: a letter-digit mix with optional separators (E-107, KX40-CPL-140E, V-05, P-2B).
_IDENT = re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:[-/.][A-Za-z0-9]+)*\b")
_VALUE = re.compile(
    r"\d[\d,.]*\s*(?:N·m|N\.m|Nm|bar|mm/s|mm|m³/h|m3/h|h\b|hours|°C|C\b|kW|g\b|rpm|%|s\b|"
    r"minutes|months|years|kg|V\b|A\b|Hz|dB)"
)
_PART = re.compile(r"\b[A-Z]{2,}\d*(?:-[A-Z0-9]+){1,3}\b")
_ASKS_VALUE = re.compile(
    r"\b(how (often|many|much|long|hot|high|low)|what (torque|interval|value|pressure|"
    r"temperature|tolerance|quantity|size|weight|flow)|torque|interval|tolerance|limit)\b",
    re.I,
)
_PREDICATE = re.compile(
    r"\bwhat (?:was|were|is|are|has been|have been|got) (\w+ed|found|done)\b", re.I
)
_ASKS_PART = re.compile(r"\b(part number|part no|order|spare)\b", re.I)
# "What should I do (about this)?" asks for an instruction and nothing else: when some units
# are instructions, only they may answer it.
_ASKS_ONLY_ACTION = re.compile(r"\bwhat (should|must|can|do) (i|we|you) do\b|\bwhat to do\b", re.I)
_ASKS_ACTION = re.compile(
    r"\b(what (should|do|must|can) (i|we|you) do|what to do|how (do|should|can|to) (i|we|you)?|"
    r"what action|procedure|steps?)\b",
    re.I,
)
# Units that tell the reader to do something: an "Action:" cell, or a sentence that opens with
# a maintenance verb ("Clean the basket monthly …", "Swap to standby, clean basket …").
_IMPERATIVE = re.compile(
    r"(^|; )(Action|First action|Task)?:?\s*(check|clean|replace|open|close|isolate|remove|tighten|"
    r"swap|switch|vent|inspect|wash|fit|refit|record|drain|stop|start|re-align|align|regrease|"
    r"grease|lift|turn|wait|call|plan|read|test|keep|use|re-torque|reset|export|fill|count)\b",
    re.I,
)


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """Crude suffix stripping so 'leaks'/'leaking'/'leaked' match; enough for overlap scores."""
    for suffix in ("ings", "ing", "edly", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_terms(text: str) -> list[str]:
    """Stemmed, lower-cased words of ``text`` without stopwords (order kept, duplicates kept)."""
    words = [w.lower() for w in _WORD.findall(text)]
    return [_stem(w) for w in words if len(w) > 1 and w not in STOPWORDS and w not in _EXTRA_STOP]


def identifiers(text: str) -> set[str]:
    """Normalised identifiers of ``text``: "E-107", "E107" and "e 107" all give "e107"."""
    found = {re.sub(r"[^a-z0-9]", "", m.group(0).lower()) for m in _IDENT.finditer(text)}
    # "e 107" / "E 107": a letter group followed by a number, spoken or typed apart
    # (upper-case letters, or one letter: "of 14" is not an identifier)
    for m in re.finditer(r"\b([A-Z]{1,3}|[b-hj-z])[\s-](\d{2,})\b", text):
        found.add((m.group(1) + m.group(2)).lower())
    return found


# Memoised by text: the same units come back query after query.
@lru_cache(maxsize=32768)
def _terms_of(text: str) -> frozenset[str]:
    return frozenset(content_terms(text))


@lru_cache(maxsize=32768)
def _ids_of(text: str) -> frozenset[str]:
    return frozenset(identifiers(text))


@dataclass
class Candidate:
    source: int  # 1-based source number
    position: int  # unit index within the source
    text: str
    kind: str = "sentence"
    context: str = ""
    coverage: float = 0.0
    cosine: float = 0.0
    entity: float = 0.0
    when: float = 0.0
    lead: bool = False
    score: float = 0.0
    key: int | None = None  # the source item's key (its stored unit vectors)
    stored: bool = False  # its cosine came from a unit vector stored at ingest


WEIGHTS_FILE = Path(__file__).with_name("composer_weights.json")


@dataclass(frozen=True)
class ComposerWeights:
    """Score weights of composer v2. The class defaults were set by hand; the shipped
    ``composer_weights.json`` holds the ones ``scripts/fit_composer.py`` fitted on the dev
    splits (:meth:`fitted`, the generator's default)."""

    cosine: float = 0.35
    coverage: float = 0.25
    entity: float = 0.2
    answer_type: float = 0.1
    source: float = 0.15
    rank: float = 0.15
    position: float = 0.2
    when: float = 0.3
    lead: float = 0.0  # first unit of a document or section

    @classmethod
    def fitted(cls, path: Path | str = WEIGHTS_FILE) -> ComposerWeights:
        """The fitted weights, or the class defaults when the file is missing or unreadable."""
        try:
            raw = json.loads(Path(path).read_text())["weights"]
            return cls(**{f.name: float(raw[f.name]) for f in fields(cls) if f.name in raw})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("composer weights %s not used (%s): hand-set defaults", path, exc)
            return cls()

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class ExtractiveGenerator(Generator):
    """Compose an answer from the best source units, each followed by ``[n]``.

    Args:
        max_units: at most this many units in the answer.
        max_chars: stop adding units beyond this many characters.
        min_coverage: a unit needs this share of the question's term weight...
        min_cosine: ...or a unit cosine at least this high (or, without an encoder, its
            source's cosine), to count as support. Measured on perlfaq/Zaragoza questions asked
            against the other set's answers (out of domain) and against their own.
        min_stored_cosine: the same for a unit vector stored at ingest (late-chunked: pooled
            in its chunk's context, its cosines to a question run lower than a unit encoded
            alone). Both measured with ``scripts/fit_composer.py --thresholds``.
        keep_ratio: further units must score at least this fraction of the best one.
        weights: score weights (see :class:`ComposerWeights`).
        unit_sources: units are taken from this many top sources.
        max_encoded: units (best by the other scores) whose cosine is computed.
        min_photo_cosine: ``min_cosine`` (and ``min_stored_cosine``) when the query vector
            carries a wordless photo's head vector (:meth:`for_photo`): the head's cosines are
            lower than text-to-text ones. Measured with the shipped head on the demo corpus
            with "what should I do about this?": the battery drawing's best unit 0.137 (0.133
            on the text documents alone), seven unrelated wordless scikit-image photos 0.053–
            0.128 (coffee). A thin margin on few photos: such answers are marked
            ``matched_by="photo"`` (see docs/notes/joint.md).
    """

    name = "extractive"

    def __init__(
        self,
        max_units: int = 3,
        max_chars: int = 700,
        min_coverage: float = 0.5,
        min_cosine: float = 0.45,
        min_stored_cosine: float = 0.40,
        keep_ratio: float = 0.8,
        weights: ComposerWeights | None = None,
        max_sentences: int | None = None,
        unit_sources: int = 10,
        max_encoded: int = 24,
        min_photo_cosine: float = 0.13,
    ) -> None:
        self.max_units = max_sentences or max_units
        self.max_chars = max_chars
        self.min_coverage = min_coverage
        self.min_cosine = min_cosine
        self.min_stored_cosine = min_stored_cosine
        self.keep_ratio = keep_ratio
        self.weights = weights or _fitted_weights()
        self.unit_sources = unit_sources
        self.max_encoded = max_encoded
        self.min_photo_cosine = min_photo_cosine

    def for_photo(self) -> ExtractiveGenerator:
        """This composer with the support threshold of a photo question (see the class doc)."""
        photo = copy.copy(self)
        photo.min_cosine = photo.min_stored_cosine = self.min_photo_cosine
        return photo

    # ------------------------------------------------------------------------- selection
    def candidates(self, sources: Sequence[Hit]) -> list[Candidate]:
        out = []
        for n, hit in enumerate(sources[: self.unit_sources], start=1):
            for unit in _text_units(hit):
                out.append(
                    Candidate(
                        n, unit.position, unit.text, unit.kind, unit.context, lead=unit.lead,
                        key=hit.key,
                    )
                )  # fmt: skip
        return out

    def select(
        self,
        question: str,
        sources: Sequence[Hit],
        encoder: Any | None = None,
        query_vector: np.ndarray | None = None,
        max_sources: int | None = None,
        stored: Lookup | None = None,
    ) -> list[Candidate]:
        """The supporting units, best first (empty when nothing supports an answer)."""
        ranked = self.ranked(question, sources, encoder, query_vector, stored)
        return self._pick(ranked, max_sources) if ranked else []

    def ranked(
        self,
        question: str,
        sources: Sequence[Hit],
        encoder: Any | None = None,
        query_vector: np.ndarray | None = None,
        stored: Lookup | None = None,
    ) -> list[Candidate]:
        """All scored units, best first (empty when nothing supports an answer).

        Every unit is scored lexically first (cheap); only the best ``max_encoded`` get their
        cosine: from the unit vectors stored at ingest (``stored``, one lookup for all
        sources), the rest encoded in one batch, which bounds the composer's cost.
        ``query_vector`` is the question's vector in the units' space (a text question's, or
        a photo's projected one); without it the question text is encoded.
        """
        candidates = self.candidates(sources)
        if not candidates:
            return []
        w = self.weights
        self._score_lexical(question, sources, candidates)
        candidates = [c for c in candidates if c.score > float("-inf")]
        if _ASKS_ONLY_ACTION.search(question):
            instructions = [c for c in candidates if _IMPERATIVE.search(c.text)]
            candidates = instructions or candidates
        if _ASKS_PART.search(question):  # likewise, a part number is answered by one
            numbered = [c for c in candidates if _PART.search(c.text)]
            candidates = numbered or candidates
        candidates.sort(key=lambda c: -c.score)
        candidates = candidates[: self.max_encoded]
        if not candidates:
            return []
        # a zero cosine weight (the fitted default) needs no unit vectors: the support test
        # then reads each source's cosine, and the composer encodes nothing
        use_vectors = encoder if w.cosine > 0 else None
        cosines = _unit_cosines(question, candidates, use_vectors, query_vector, stored)
        for i, cand in enumerate(candidates):
            source_cos = _cosine(sources[cand.source - 1]) or 0.0
            cand.cosine = cosines[i] if cosines is not None else source_cos
            cand.score += w.cosine * cand.cosine
        # The question is answerable when some unit is close in meaning, covers its terms, or
        # names every identifier it asks about ("What does E-103 indicate?" → E-103's row).
        if not any(
            c.coverage >= self.min_coverage
            or c.cosine >= (self.min_stored_cosine if c.stored else self.min_cosine)
            or c.entity >= 1.0
            for c in candidates
        ):
            return []
        candidates.sort(key=lambda c: (-c.score, c.source, c.position))
        return candidates

    def _score_lexical(
        self, question: str, sources: Sequence[Hit], candidates: list[Candidate]
    ) -> None:
        """Everything but the cosine: coverage, entities, answer type, rank and position."""
        w = self.weights
        term_sets = [_terms_of(f"{c.context} {c.text}") for c in candidates]
        asked_when = when.read(question)
        weights = _term_weights(when.without_when(question), term_sets)
        total = sum(weights.values())
        q_ids = identifiers(question)
        asks_value = bool(_ASKS_VALUE.search(question))
        asks_part = bool(_ASKS_PART.search(question))
        asks_action = bool(_ASKS_ACTION.search(question))
        predicate = _asked_predicate(question)
        hit_ids = [_ids_of(h.text) for h in sources[: self.unit_sources]]
        logs = {c.source for c in candidates if is_log_entry(c.text)}
        for cand, terms in zip(candidates, term_sets, strict=True):
            cand.coverage = sum(x for t, x in weights.items() if t in terms) / total if total else 0
            ids = _ids_of(f"{cand.context} {cand.text}")
            if q_ids and not q_ids & ids and _names_another(q_ids, ids):
                cand.score = float("-inf")  # "what is E-107?" is not answered by E-114's row
                continue
            cand.entity = _entity_credit(q_ids, ids, hit_ids[cand.source - 1])
            typed = (
                (asks_value and bool(_VALUE.search(cand.text)))
                or (asks_part and bool(_PART.search(cand.text)))
                or (asks_action and bool(_IMPERATIVE.search(cand.text)))
                or (predicate is not None and predicate in _terms_of(cand.text))
            )
            if asked_when:
                cand.when = when.agreement(asked_when, when.read(f"{cand.context} {cand.text}"))
            source_cos = _cosine(sources[cand.source - 1]) or 0.0
            # Prose states its answer first (an FAQ answer, a section); a log's entries are
            # ordered by time and its first line is its title: no position or lead credit there.
            prose = cand.source not in logs
            cand.score = (
                w.coverage * cand.coverage
                + w.entity * cand.entity
                + w.answer_type * typed
                + w.source * source_cos
                + w.rank / (1.0 + 0.5 * (cand.source - 1))
                + (w.position / (1.0 + cand.position)) * prose
                + w.lead * cand.lead * (cand.kind == "sentence" and prose)
                + w.when * cand.when
            )

    def _pick(self, ranked: list[Candidate], max_sources: int | None = None) -> list[Candidate]:
        picked: list[Candidate] = []
        seen: set[str] = set()
        length = 0
        for cand in ranked:
            if len(picked) >= self.max_units:
                break
            if picked and cand.score < self.keep_ratio * picked[0].score:
                break
            key = cand.text.lower()
            if _repeats(key, seen) or (picked and length + len(cand.text) > self.max_chars):
                continue
            used = {c.source for c in picked}
            if max_sources is not None and cand.source not in used and len(used) >= max_sources:
                continue  # an answer cites at most k sources
            picked.append(cand)
            seen.add(key)
            length += len(cand.text)
        return picked

    # ------------------------------------------------------------------------- protocol
    def compose(
        self,
        question: str,
        sources: Sequence[Hit],
        encoder: Any | None = None,
        query_vector: np.ndarray | None = None,
        max_sources: int | None = None,
        stored: Lookup | None = None,
    ) -> str:
        picked = self.select(question, sources, encoder, query_vector, max_sources, stored)
        if not picked:
            return NOT_FOUND
        return " ".join(f"{c.text} [{c.source}]" for c in picked)

    def generate(self, prompt: Prompt) -> str:
        return self.compose(prompt.question, prompt.sources)

    def stream(self, prompt: Prompt) -> Iterator[str]:
        yield from stream_words(self.generate(prompt))


_FITTED: list[ComposerWeights] = []


def _fitted_weights() -> ComposerWeights:
    if not _FITTED:  # read once per process
        _FITTED.append(ComposerWeights.fitted())
    return _FITTED[0]


def stream_words(text: str) -> Iterator[str]:
    """Word-sized pieces (with their trailing space) so a terminal shows the answer arriving."""
    yield from re.findall(r"\S+\s*", text)


def _text_units(hit: Hit) -> list[Unit]:
    """Units of text and speech. An image's own words (caption, OCR, guessed labels) are not an
    answer: for a photo question they are what the user already holds, so images give none."""
    if hit.modality not in ("text", "audio"):
        return []
    return units(hit)


def _repeats(text: str, seen: set[str]) -> bool:
    """Overlapping chunks give the same log entry or sentence twice, one copy cut short at a
    window's edge: a unit contained in a picked one (or containing it) says nothing new."""
    return any(text in other or other in text for other in seen)


def _asked_predicate(question: str) -> str | None:
    """The verb a "what was found / what is used / what were replaced" question asks about:
    the answer is the unit that says it ("Found a torn blue nitrile glove …"), whatever else it
    shares with the question."""
    match = _PREDICATE.search(question)
    if match is None:
        return None
    terms = content_terms(match.group(1))
    return terms[0] if terms else None


def _entity_credit(asked: set[str], named: set[str], in_source: set[str]) -> float:
    """Share of the asked identifiers: half for the unit naming them, half for its source
    naming them (a log entry under "P-2B" need not repeat the tag)."""
    if not asked:
        return 0.0
    return 0.5 * (len(asked & named) + len(asked & in_source)) / len(asked)


def _prefix(identifier: str) -> str:
    return re.match(r"[a-z]*", identifier).group(0)  # type: ignore[union-attr]


def _names_another(asked: set[str], named: set[str]) -> bool:
    """The unit names an identifier of the same kind (same letter prefix) as one asked about,
    but not the one asked about."""
    kinds = {_prefix(a) for a in asked}
    # an identifier extending an asked one is its variant or successor (KX40-SC-2210-B for
    # "what replaces KX40-SC-2210?"), not another thing of the same kind
    others = {n for n in named - asked if not any(n.startswith(a) for a in asked)}
    return any(_prefix(n) in kinds for n in others)


def _term_weights(question: str, sets: Sequence[set[str]]) -> dict[str, float]:
    """IDF of each question term over the candidate units (rarer = more telling)."""
    terms = dict.fromkeys(content_terms(question))
    if not terms:
        return {}
    n = len(sets)
    return {t: math.log(1 + n / (1 + sum(t in s for s in sets))) for t in terms}


def _unit_cosines(
    question: str,
    candidates: Sequence[Candidate],
    encoder: Any | None,
    query_vector: np.ndarray | None,
    stored: Lookup | None = None,
) -> list[float] | None:
    """Cosine of every unit to the question: stored unit vectors where their text checksum
    matches, the other units (and the question, without ``query_vector``) in one batch."""
    if encoder is None:
        return None
    found = _stored_vectors(candidates, stored)
    for cand, vector in zip(candidates, found, strict=True):
        cand.stored = vector is not None
    missing = [i for i, v in enumerate(found) if v is None]
    texts = [candidates[i].text for i in missing]
    if query_vector is None:
        vectors = np.asarray(encoder.encode([question, *texts]), dtype=np.float32)
        q, fresh = vectors[0], vectors[1:]
    else:
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        fresh = np.asarray(encoder.encode(texts), dtype=np.float32) if texts else []
    for i, vector in zip(missing, fresh, strict=True):
        found[i] = vector
    u = np.stack(found) if found else np.zeros((0, q.shape[0]), np.float32)
    norms = np.linalg.norm(u, axis=1) * (np.linalg.norm(q) or 1.0)
    return [float(x) for x in (u @ q) / np.where(norms > 0, norms, 1.0)]


def _stored_vectors(
    candidates: Sequence[Candidate], stored: Lookup | None
) -> list[np.ndarray | None]:
    if stored is None:
        return [None] * len(candidates)
    rows = stored([c.key for c in candidates if c.key is not None])
    out: list[np.ndarray | None] = []
    for c in candidates:
        row = rows.get((c.key, c.position)) if c.key is not None else None
        out.append(row[1] if row is not None and row[0] == checksum(c.text) else None)
    return out


def _cosine(hit: Hit) -> float | None:
    for key in ("cosine", "dense"):
        if key in hit.scores:
            return float(hit.scores[key])
    return None
