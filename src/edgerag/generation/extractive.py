"""The offline answerer: picks the sentences that answer the question and cites them.

No model is needed. Each sentence of every source is scored by

* lexical coverage: the share of the question's content terms (IDF-weighted over the candidate
  sentences, light suffix stemming) that the sentence contains;
* source relevance: the source's bi-encoder cosine to the question (set by the reranker) and
  its rank;
* position: FAQ answers and manual sections lead with the answer, so earlier sentences of an
  item get a small bonus.

Grounding: the answer is built only from verbatim sentences of the sources, each followed by
its ``[n]``. A sentence must pass a support test (enough coverage, or a source cosine high
enough to be on topic); when no sentence passes, the answer says so instead of guessing.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from edgerag.generation.base import Generator
from edgerag.generation.prompts import Prompt
from edgerag.retrieval.text_query import STOPWORDS
from edgerag.types import Hit

logger = logging.getLogger(__name__)

NOT_FOUND = "I could not find an answer to that in the indexed documents."

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_PARAGRAPH = re.compile(r"\n\s*\n")
# A sentence ends at . ! ? (optionally closed by a quote/bracket) followed by space and a capital,
# digit or opening quote; abbreviations like "e.g. the" stay joined because "the" is lower case.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")
_EXTRA_STOP = frozenset("there their about into does did get use using way want need".split())
_WHITESPACE = re.compile(r"\s+")


def _stem(word: str) -> str:
    """Crude suffix stripping so 'leaks'/'leaking'/'leaked' match; enough for overlap scores."""
    for suffix in ("ings", "ing", "edly", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_terms(text: str) -> list[str]:
    """Stemmed, lower-cased words of ``text`` without stopwords (order kept, duplicates kept)."""
    words = [w.lower() for w in _WORD.findall(text)]
    return [_stem(w) for w in words if w not in STOPWORDS and w not in _EXTRA_STOP]


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` with their original characters (whitespace runs collapsed)."""
    out: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        flat = _WHITESPACE.sub(" ", paragraph).strip()
        if flat:
            out.extend(s.strip() for s in _SENTENCE_END.split(flat) if s.strip())
    return out


def _is_prose(sentence: str) -> bool:
    """Skip code lines, headings, questions and fragments: they don't answer anything."""
    if len(sentence) < 20 or sentence.endswith("?"):
        return False
    letters = sum(c.isalpha() for c in sentence)
    return letters / len(sentence) >= 0.5 and len(_WORD.findall(sentence)) >= 4


@dataclass
class Candidate:
    source: int  # 1-based source number
    position: int  # sentence index within the source
    text: str
    coverage: float = 0.0
    score: float = 0.0


class ExtractiveGenerator(Generator):
    """Compose an answer from the best source sentences, each followed by ``[n]``.

    Args:
        max_sentences: at most this many sentences in the answer.
        max_chars: stop adding sentences beyond this many characters.
        min_coverage: a sentence needs this share of the question's term weight...
        min_cosine: ...or its source a bi-encoder cosine at least this high, to count as
            support. Tuned (with ``weights``, on a handful of settings) on the perlfaq and
            Zaragoza Q/A sets, each asked against its own answers and against the other's:
            65 % gold-sentence answers, 3 % answers to out-of-domain questions.
        keep_ratio: further sentences must score at least this fraction of the best one.
        weights: (coverage, source relevance, source rank, sentence position) score weights.
    """

    name = "extractive"

    def __init__(
        self,
        max_sentences: int = 3,
        max_chars: int = 700,
        min_coverage: float = 0.5,
        min_cosine: float = 0.4,
        keep_ratio: float = 0.7,
        weights: tuple[float, float, float, float] = (0.3, 0.3, 0.2, 0.2),
    ) -> None:
        self.max_sentences = max_sentences
        self.max_chars = max_chars
        self.min_coverage = min_coverage
        self.min_cosine = min_cosine
        self.keep_ratio = keep_ratio
        self.weights = weights

    # ------------------------------------------------------------------------- selection
    def select(self, question: str, sources: Sequence[Hit]) -> list[Candidate]:
        """The supporting sentences, best first (empty when nothing supports an answer)."""
        candidates = [
            Candidate(n, i, s)
            for n, hit in enumerate(sources, start=1)
            for i, s in enumerate(split_sentences(hit.text))
            if _is_prose(s)
        ]
        if not candidates:
            return []
        term_sets = [set(content_terms(c.text)) for c in candidates]
        weights = self._term_weights(question, term_sets)
        total = sum(weights.values())
        supported = []
        for cand, terms in zip(candidates, term_sets, strict=True):
            hit = sources[cand.source - 1]
            cand.coverage = sum(w for t, w in weights.items() if t in terms) / total if total else 0
            cosine = _cosine(hit)
            if cand.coverage < self.min_coverage and (cosine is None or cosine < self.min_cosine):
                continue
            relevance = cosine if cosine is not None else 0.0
            rank_prior = 1.0 / (1.0 + 0.3 * (cand.source - 1))
            position_prior = 1.0 / (1.0 + cand.position)
            w_cov, w_rel, w_rank, w_pos = self.weights
            cand.score = (
                w_cov * cand.coverage
                + w_rel * relevance
                + w_rank * rank_prior
                + w_pos * position_prior
            )
            supported.append(cand)
        supported.sort(key=lambda c: (-c.score, c.source, c.position))
        return self._pick(supported)

    @staticmethod
    def _term_weights(question: str, sets: Sequence[set[str]]) -> dict[str, float]:
        """IDF of each question term over the candidate sentences (rarer = more telling)."""
        terms = dict.fromkeys(content_terms(question))
        if not terms:
            return {}
        n = len(sets)
        return {t: math.log(1 + n / (1 + sum(t in s for s in sets))) for t in terms}

    def _pick(self, ranked: list[Candidate]) -> list[Candidate]:
        picked: list[Candidate] = []
        seen: set[str] = set()
        length = 0
        for cand in ranked:
            if len(picked) >= self.max_sentences:
                break
            if picked and cand.score < self.keep_ratio * picked[0].score:
                break
            key = cand.text.lower()
            if key in seen or (picked and length + len(cand.text) > self.max_chars):
                continue
            picked.append(cand)
            seen.add(key)
            length += len(cand.text)
        return picked

    # ------------------------------------------------------------------------- protocol
    def compose(self, question: str, sources: Sequence[Hit]) -> str:
        picked = self.select(question, sources)
        if not picked:
            return NOT_FOUND
        return " ".join(f"{c.text} [{c.source}]" for c in picked)

    def generate(self, prompt: Prompt) -> str:
        return self.compose(prompt.question, prompt.sources)

    def stream(self, prompt: Prompt) -> Iterator[str]:
        # Word-sized pieces (with their trailing space) so a terminal shows it arriving.
        yield from re.findall(r"\S+\s*", self.generate(prompt))


def _cosine(hit: Hit) -> float | None:
    for key in ("cosine", "dense"):
        if key in hit.scores:
            return float(hit.scores[key])
    return None
