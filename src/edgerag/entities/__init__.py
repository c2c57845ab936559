"""Identifiers in maintenance text — alarm codes, part numbers, tags, values — found and normalised.

``extract(text)`` returns each distinct entity once, in order of first appearance, with a
normalised ``name`` so that variants meet: ``E-107``, ``E107`` and ``e 107`` are all the entity
``"E-107"``; ``8,000 hours`` and ``8000 h`` are ``"8000 h"``. The store keeps an exact index of
these names (FTS5 would split ``E-107`` into ``e`` and ``107``) and edges between entities that
share a table row or a section: the entity graph.

Everything here is pure and deterministic, so every replica derives the same graph from the
same ops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgerag.entities.patterns import KINDS, PATTERNS

_DIGIT = re.compile(r"\d")
_LONG_RUN = re.compile(r"\S{65,}")


@dataclass(frozen=True)
class Entity:
    """One identifier found in text.

    Attributes:
        kind: ``"code"``, ``"part"``, ``"tag"``, ``"model"``, ``"serial"``, ``"standard"`` or
            ``"value"``.
        name: The normalised name, the entity's identity (``"E-107"``, ``"28 N·m"``).
        surface: The text as written where it was first found (``"e 107"``).
    """

    kind: str
    name: str
    surface: str


def extract(text: str) -> list[Entity]:
    """The distinct entities in ``text``, in order of first appearance."""
    found: list[tuple[int, Entity]] = []
    taken: list[tuple[int, int]] = []
    if not _DIGIT.search(text):
        return []  # every kind of entity has a digit
    # A run of 65+ non-space characters (a hash, base64, garbage) holds no identifier, and the
    # patterns backtrack polynomially on long runs: blank such runs (same length, same offsets).
    text = _LONG_RUN.sub(lambda m: " " * len(m.group(0)), text)
    for pattern in PATTERNS:
        if not pattern.guard(text):
            continue
        for match in pattern.regex.finditer(text):
            start, end = match.span()
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            name = pattern.normalise(match)
            if name is None:
                continue
            taken.append((start, end))
            surface = match.group("id") if "id" in match.re.groupindex else match.group(0)
            found.append((start, Entity(pattern.kind, name, surface)))
    found.sort(key=lambda pair: pair[0])
    seen: set[tuple[str, str]] = set()
    result: list[Entity] = []
    for _, entity in found:
        if (entity.kind, entity.name) not in seen:
            seen.add((entity.kind, entity.name))
            result.append(entity)
    return result


def normalize(surface: str) -> str:
    """The entity name ``surface`` stands for: ``"e107"`` → ``"E-107"``, ``"8,000 hours"`` →
    ``"8000 h"``. A surface that is no entity comes back with its whitespace collapsed.

    Typed lookups (``edgerag entities kx40-cpl-140e``) are matched case-insensitively for the
    identifier kinds, which in running text must be upper-case to count.
    """
    collapsed = " ".join(surface.split())
    for candidate in (collapsed, collapsed.upper()):
        entities = extract(candidate)
        if entities and _covers(entities[0], candidate):
            return entities[0].name
    return collapsed


def _covers(entity: Entity, text: str) -> bool:
    # "P-2B strainer" is not a name for P-2B; the surface must be (nearly) all of the text.
    return len(entity.surface) >= len(text.strip(" .,;:()")) - 1 or text.endswith(entity.surface)


__all__ = ["KINDS", "Entity", "extract", "normalize"]
