"""Turning a user's question into a safe FTS5 MATCH expression."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\w+", re.UNICODE)
# Function words that only dilute BM25 on short questions.
STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it my of on or the to what when "
    "where which who why with you your should we this that about".split()
)


def query_terms(query: str) -> list[str]:
    """The query's distinct lower-cased words, stopwords dropped unless nothing else is left:
    what every BM25 engine ORs together."""
    terms = [t.lower() for t in _TOKEN.findall(query)]
    content = [t for t in terms if t not in STOPWORDS] or terms
    return list(dict.fromkeys(content))


def fts_match(query: str) -> str:
    """OR of the query's quoted terms (:func:`query_terms`).

    Quoting every term means user punctuation (``E-107?``, ``"``, ``*``) can never be read as
    FTS5 syntax.
    """
    return " OR ".join(f'"{t}"' for t in query_terms(query))


def has_content_words(query: str) -> bool:
    """Whether ``query`` has a word that is not a stopword: "what should I do about this?" has
    none, and ranking by its function words only ranks by how long and chatty an item is."""
    return any(t.lower() not in STOPWORDS for t in _TOKEN.findall(query))
