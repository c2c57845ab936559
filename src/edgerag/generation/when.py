"""When a question asks about, matched against when a log entry was written.

A shift log heads each section with a dated line ("2026-03-14  Shift N  Operator: J. Mbeki"),
and a user asks "what was found on the night shift of 14 March 2026?". The words "14", "March"
and "night" are not in that header, so word overlap cannot tell the right section from the
others; this module reads both sides into the same form:

* dates: "2026-03-14", "14/03/2026" and "14.03.2026" (day first), "14 March 2026",
  "14th of March", "March 14, 2026", "14 Mar" — a date without a year matches any year;
* shifts, by a small table: the letters of the usual three-shift rota (A/B/C or A/B/N, as
  "Shift N") and the words people use for them ("night shift", "early", "morning", "day",
  "late", "afternoon", "evening"). Two-shift plants that call their shifts "day"/"night"
  match by the words as well.

:func:`agreement` scores a unit: +1 when its date and shift are the asked ones, below 0 when
it states another date (or shift), 0 when it states none (a manual sentence has no date).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MONTHS = {
    name: n
    for n, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_ORD = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(\d{4}))?"
_ISO = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_NUMERIC = re.compile(r"\b(\d{1,2})[/.](\d{1,2})[/.](\d{4})\b")  # day first, as in Europe
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MONTH}{_YEAR}\b", re.I)
_MONTH_DAY = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}){_ORD}\b{_YEAR}", re.I)

# Shift words and rota letters -> the part of the day they cover. "day" is the early shift of a
# three-shift rota and the day half of a two-shift one: both start in the morning.
SHIFT_WORDS = {
    "night": "night",
    "nights": "night",
    "early": "early",
    "morning": "early",
    "day": "early",
    "late": "late",
    "afternoon": "late",
    "evening": "late",
}
SHIFT_LETTERS = {"A": "early", "B": "late", "C": "night", "N": "night", "D": "early"}
_SHIFT_BY_WORD = re.compile(r"\b(" + "|".join(SHIFT_WORDS) + r")\s+shifts?\b", re.I)
_SHIFT_BY_LETTER = re.compile(r"\b[Ss]hift\s+([A-Z])\b")

Date = tuple[int | None, int, int]  # (year or None, month, day)


@dataclass(frozen=True)
class When:
    dates: frozenset[Date] = field(default_factory=frozenset)
    shifts: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.dates or self.shifts)


def _date(year: int | None, month: int, day: int) -> Date | None:
    return (year, month, day) if 1 <= month <= 12 and 1 <= day <= 31 else None


def _spans(text: str) -> list[tuple[tuple[int, int], Date | str]]:
    found: list[tuple[tuple[int, int], Date | str]] = []
    for m in _ISO.finditer(text):
        found.append((m.span(), _date(int(m[1]), int(m[2]), int(m[3]))))  # type: ignore[arg-type]
    for m in _NUMERIC.finditer(text):
        found.append((m.span(), _date(int(m[3]), int(m[2]), int(m[1]))))  # type: ignore[arg-type]
    for m in _DAY_MONTH.finditer(text):
        year = int(m[3]) if m[3] else None
        found.append((m.span(), _date(year, _MONTHS[m[2].lower()], int(m[1]))))  # type: ignore[arg-type]
    for m in _MONTH_DAY.finditer(text):
        year = int(m[3]) if m[3] else None
        found.append((m.span(), _date(year, _MONTHS[m[1].lower()], int(m[2]))))  # type: ignore[arg-type]
    for m in _SHIFT_BY_WORD.finditer(text):
        found.append((m.span(), SHIFT_WORDS[m[1].lower()]))
    for m in _SHIFT_BY_LETTER.finditer(text):
        if m[1] in SHIFT_LETTERS:
            found.append((m.span(), SHIFT_LETTERS[m[1]]))
    return [(span, value) for span, value in found if value is not None]


def read(text: str) -> When:
    """The dates and shifts ``text`` names."""
    values = [value for _, value in _spans(text)]
    return When(
        frozenset(v for v in values if isinstance(v, tuple)),
        frozenset(v for v in values if isinstance(v, str)),
    )


def without_when(text: str) -> str:
    """``text`` with its dates and shift phrases blanked (they are scored by :func:`agreement`,
    not as words)."""
    chars = list(text)
    for (start, end), _ in _spans(text):
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _same_day(a: Date, b: Date) -> bool:
    return a[1:] == b[1:] and (a[0] is None or b[0] is None or a[0] == b[0])


def agreement(asked: When, stated: When) -> float:
    """In [-1, 1]: how well what a unit states matches when the question asks about.

    The date counts twice the shift. A unit that states another date or shift is from another
    time, whatever else matches: it scores below 0 by how much it contradicts (the B shift of
    the asked day -1/3, the night shift of another day -2/3). A unit that states nothing
    (a manual's sentence) scores 0.
    """
    checks = []  # (weight, asked, matches or None when the unit states nothing)
    if asked.dates:
        same = any(_same_day(a, s) for a in asked.dates for s in stated.dates)
        checks.append((2.0, same if stated.dates else None))
    if asked.shifts:
        checks.append((1.0, bool(asked.shifts & stated.shifts) if stated.shifts else None))
    scale = sum(weight for weight, _ in checks)
    if not scale:
        return 0.0
    contradicted = sum(weight for weight, same in checks if same is False)
    if contradicted:
        return -contradicted / scale
    return sum(weight for weight, same in checks if same) / scale
