"""The one table of identifier patterns: what counts as a code, part, tag, value, ...

There is no library that knows plant identifiers, so these are our own regexes. Each kind has
a pattern, a normaliser and tests (tests/test_entities.py) with positives and negatives:
ordinary words, years and page numbers must never become entities.

Patterns run in the order of :data:`PATTERNS`; a span taken by an earlier kind is not offered
to a later one (``SB-2026-03`` is a part number, so its ``SB-2026`` prefix is not a tag).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# An id made of upper-case letters and digits in 2+ dash-joined segments ("KX40-CPL-140E").
_SEG = r"[A-Z0-9]+"
_ID = rf"{_SEG}(?:-{_SEG})+"

# Standards bodies whose documents maintenance texts cite ("ISO 4406", "DIN EN 1092-1").
_BODIES = r"ISO|IEC|DIN|EN|ASTM|ANSI|API|ASME|BS|NFPA|IEEE|SAE|JIS|NEMA|VDI|UL|CSA|NACE|AGMA"

# Units a value may carry, longest first so "mm/s" wins over "mm"; → canonical spelling.
UNITS: dict[str, str] = {
    "N·m": "N·m",
    "N.m": "N·m",
    "N m": "N·m",
    "Nm": "N·m",
    "kN·m": "kN·m",
    "m³/h": "m³/h",
    "m3/h": "m³/h",
    "mm/s": "mm/s",
    "l/min": "L/min",
    "L/min": "L/min",
    "dB(A)": "dB(A)",
    "rpm": "rpm",
    "r/min": "rpm",
    "°C": "°C",
    "°F": "°F",
    "bar g": "bar",
    "barg": "bar",
    "bar": "bar",
    "mbar": "mbar",
    "kPa": "kPa",
    "MPa": "MPa",
    "Pa": "Pa",
    "psi": "psi",
    "kW": "kW",
    "MW": "MW",
    "kVA": "kVA",
    "kV": "kV",
    "V": "V",
    "mA": "mA",
    "Hz": "Hz",
    "µm": "µm",
    "μm": "µm",
    "mm": "mm",
    "cm": "cm",
    "m": "m",
    "kg": "kg",
    "g": "g",
    "L": "L",
    "litres": "L",
    "liters": "L",
    "h": "h",
    "hours": "h",
    "hour": "h",
    "hrs": "h",
    "min": "min",
    "minutes": "min",
    "s": "s",
    "seconds": "s",
    "%": "%",
}
_UNIT_ALT = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
# 8,000 / 8 000 / 8000 / 0.05 / 0,4 ; a thin or no-break space may group thousands.
_NUMBER = r"\d{1,3}(?:[,\u202f\u00a0 ]\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?"

# Tag-shaped words that are not equipment: hash functions, encodings, RFCs.
TAG_STOPWORDS = frozenset({"SHA", "AES", "MD", "UTF", "RFC", "CVE", "ISBN", "COVID", "RS", "USB"})


@dataclass(frozen=True)
class Pattern:
    """One entity kind: its regex and how a match becomes a normalised name."""

    kind: str
    regex: re.Pattern[str]
    normalise: Callable[[re.Match[str]], str | None]


def _standard(m: re.Match[str]) -> str:
    bodies = " ".join(re.split(r"[ /-]+", m.group("bodies").upper().strip(" /-")))
    # The edition year ("ISO 4406:2021") is dropped so every citation of a standard meets.
    return f"{bodies} {m.group('num').split(':')[0]}"


def _code(m: re.Match[str]) -> str:
    if m.group("letter"):
        return f"{m.group('letter').upper()}-{m.group('num')}"
    return f"{m.group('letter2')}-{m.group('num2')}"


def _upper(m: re.Match[str]) -> str:
    return m.group("id").upper()


def _part(m: re.Match[str]) -> str | None:
    token = m.group("id")
    # A part number mixes letters and digits; "2025-11-20" or "SEE-ALSO" are not parts.
    if not (re.search(r"[A-Z]", token) and re.search(r"\d", token)):
        return None
    return token


def _tag(m: re.Match[str]) -> str | None:
    if m.group("prefix") in TAG_STOPWORDS:
        return None
    return f"{m.group('prefix')}-{m.group('num')}"


def _value(m: re.Match[str]) -> str:
    return f"{normalise_number(m.group('num'))} {UNITS[m.group('unit')]}"


def normalise_number(text: str) -> str:
    """``8,000`` → ``8000``; ``0,4`` → ``0.4``; ``1 240`` → ``1240``; ``28.0`` stays."""
    text = re.sub(r"[\u202f\u00a0 ]", "", text)
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", text):
        return text.replace(",", "")
    return text.replace(",", ".")


PATTERNS: tuple[Pattern, ...] = (
    Pattern(
        "standard",
        re.compile(
            rf"\b(?P<bodies>(?:(?:{_BODIES})[ /-]?){{1,3}}?)\s?"
            r"(?P<num>\d{2,6}(?:-\d{1,3})*(?::\d{4})?)\b"
        ),
        _standard,
    ),
    Pattern(
        "serial",
        re.compile(
            rf"(?i:\bserial(?:\s+(?:number|no\.?)s?)?|\bS/N)\s*[:#]?\s*(?P<id>(?-i:{_ID}|[A-Z0-9]{{5,}}))\b"
        ),
        _upper,
    ),
    Pattern(
        "model",
        re.compile(
            rf"(?i:\b(?:model|type)(?:\s+(?:number|no\.?))?)\s*[:#]?\s*(?P<id>(?-i:{_ID}))\b"
        ),
        _upper,
    ),
    Pattern(
        "code",
        re.compile(
            r"\b(?P<letter>[EF]|e)[- ]?(?P<num>\d{2,4})\b(?![.,]\d)"
            r"|\b(?P<letter2>[AW]|ERR|ALM|FLT)-(?P<num2>\d{2,4})\b"
        ),
        _code,
    ),
    # Segments joined by dashes: 3+ segments ("KX40-CPL-140E", "SB-2026-03"), or 2 when the
    # first mixes letters and digits ("KX40-2101"); tags ("PT-101") are left to the next kind.
    Pattern(
        "part",
        re.compile(
            rf"(?<![\w-])(?P<id>{_SEG}-{_SEG}(?:-{_SEG})+|[A-Z]+\d[A-Z0-9]*-{_SEG}(?:-{_SEG})*)"
            r"(?![\w-])"
        ),
        _part,
    ),
    Pattern(
        "tag",
        re.compile(
            r"(?<![\w-])(?P<prefix>[A-Z]{1,4})-(?P<num>\d{2,5}[A-Z]{0,2}|\d[A-Z]{1,2})(?![\w-])"
        ),
        _tag,
    ),
    Pattern(
        "value",
        re.compile(rf"(?<![\w.,])(?P<num>{_NUMBER})\s?(?P<unit>{_UNIT_ALT})(?![\w²³/])"),
        _value,
    ),
)

KINDS: tuple[str, ...] = tuple(p.kind for p in PATTERNS)
