"""PII detection and typed redaction, before anything is embedded, indexed or stored.

The validators are well-kept libraries; the regular expressions here only *propose* candidate
spans, and a candidate is redacted only when its library accepts it:

- ``[EMAIL]``: candidates checked by ``email-validator`` (syntax only, no DNS).
- ``[PHONE]``: ``phonenumbers.PhoneNumberMatcher`` at ``Leniency.VALID`` (a number must be
  valid for its region's numbering plan; it skips dates and timestamps itself).
- ``[IBAN]``: ``stdnum.iban`` (country format + mod-97 check digits).
- ``[CARD]``: 12-19 digits with a card-network prefix and a Luhn check (``stdnum.luhn``).
- ``[NATIONAL_ID]``: ``python-stdnum`` validators. Formatted ids (US SSN ``123-45-6789``, French
  NIR, Spanish DNI/NIE, Italian codice fiscale, UK National Insurance number) need no cue;
  bare digit runs that a checksum passes by chance one time in ten or eleven (Dutch BSN, German
  Steuer-IdNr, UK NHS number) are redacted only next to a cue word (``BSN``, ``IdNr``, ``NHS``).
- ``[PERSON]``: no named-entity model ships offline here (no spaCy/transformers NER weights in
  the registries this box can reach), so names are found from context only: an honorific
  (``Dr.``, ``Mrs``, ``Herr``) or a role cue (``Operator:``, ``signed off by``) followed by a
  capitalised name. A bare name in running prose is NOT found; the benchmark says how often.

Part numbers (``KX40-CPL-140E``), alarm codes (``E-107``), serials, dates, times and torque
values have no validator that accepts them, which is what keeps them (measured by
``benchmarks/pii_bench.py`` on hard negatives and on the demo corpus).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from edgerag._optional import require

EMAIL, PHONE, IBAN, CARD, NATIONAL_ID, PERSON = (
    "EMAIL",
    "PHONE",
    "IBAN",
    "CARD",
    "NATIONAL_ID",
    "PERSON",
)
KINDS = (EMAIL, PHONE, IBAN, CARD, NATIONAL_ID, PERSON)
DEFAULT_REGIONS = ("US", "GB", "DE", "NL", "FR", "ES", "IT")
# When candidates overlap, the more specific (checksummed) kind wins.
_PRIORITY = {EMAIL: 0, IBAN: 1, CARD: 2, NATIONAL_ID: 3, PHONE: 4, PERSON: 5}


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str


# Bounded by RFC 5321's limits (local part ≤ 64, label ≤ 63): an unbounded ``+`` rescans a long
# run without "@" from every start position (100k characters took 20 s).
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"
)
# IBAN: country, check digits, then groups (printed in fours or run together).
_IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{1,4}){3,8}\b")
_CARD_RE = re.compile(r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w-])")
# Network prefixes (Visa, Mastercard, Amex, Diners, JCB incl. legacy 2131/1800, Discover,
# UnionPay); 12-digit numbers only with a Maestro prefix.
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[068]|35|2131|1800|6(?:011|5|4[4-9]|2))")
_MAESTRO_PREFIX = re.compile(r"^(?:5018|5020|5038|5893|6304|6759|676[1-3])")
_DIGITS = re.compile(r"\D")

# Formatted national ids: the format itself is rare in technical text; stdnum checks the rest.
_SSN_RE = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
_NIR_RE = re.compile(r"(?<![\w])[12] ?\d{2} ?\d{2} ?(?:\d{2}|2A|2B) ?\d{3} ?\d{3} ?\d{2}(?!\w)")
_DNI_RE = re.compile(r"(?<![\w-])(?:\d{8}|[XYZ]\d{7})-?[A-Z](?![\w-])")
_CF_RE = re.compile(r"\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b")
_NINO_RE = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
_PHONE_CUE = re.compile(
    r"(?:tel|phone|call|mobile|mob|fax|cell|ring|whatsapp|sms|text)\W{0,3}(?:\w+\W{1,3}){0,2}$",
    re.IGNORECASE,
)
# Bare digit ids need a cue word shortly before them.
_CUED_ID_RE = re.compile(
    r"\b(?P<cue>BSN|burgerservicenummer|IdNr|Steuer-?ID|Steueridentifikationsnummer|"
    r"NHS(?: number| no\.?)?|SSN|social security(?: number| no\.?)?|national id(?:entity)?"
    r"(?: number| no\.?)?)\b[\s:#.]{0,4}(?P<id>\d[\d -]{7,13}\d)",
    re.IGNORECASE,
)

_UPPER, _LOWER = "A-ZÀ-ÖØ-Þ", "a-zß-öø-ÿ'’"
_NAME_WORD = rf"[{_UPPER}][{_LOWER}]+(?:-[{_UPPER}][{_LOWER}]+)?"
_NAME = rf"(?:[A-Z]\.\s?){{0,2}}{_NAME_WORD}(?:\s(?:van|von|de|der|da|di|le|la)?\s?{_NAME_WORD})?"
_TITLE = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sr|Sra|Herr|Frau|Mme|Mlle|Sig|Sig\.ra)\.?\s+"
_HONORIFIC_RE = re.compile(rf"\b{_TITLE}(?P<name>{_NAME})")
_ROLE_RE = re.compile(
    r"\b(?:(?:[Oo]perator|[Tt]echnician|[Ee]ngineer|[Ii]nspector|[Ss]upervisor|[Pp]atient|"
    r"[Nn]urse|[Ss]igned(?: off)? by|[Rr]eported by|[Aa]pproved by|[Cc]hecked by|"
    r"[Rr]eviewed by|[Ww]ritten by)\s*[:=-]?|"
    # weak cues ("contact Kestrel service") only with a colon: "Contact: A. Name"
    r"(?:[Cc]ontact|[Aa]ttn|[Nn]ame|[Cc]alled)\s*:)\s+"
    rf"(?:{_TITLE})?(?P<name>{_NAME})"
)
# Capitalised words that follow role cues in manuals and logs without being names.
_NOT_NAMES = frozenset(
    """
    A An The This That Check Checked Replace Replaced Reset Start Started Stop Stopped Open
    Close Closed Pump Seal Valve Motor Tank Skid Duty Standby Auto Manual Alarm Shift Handover
    Walk Walk-round None All Any No Yes On Off Panel Station Control Controller Lead Room Site
    Unit Day Night Morning Evening Team Crew Service Maintenance Safety Operator Technician
    Engineer Inspector Supervisor Contact Name Called Approved Reviewed Signed Reported Written
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May
    June July August September October November December Note Notes See Refer Use Set Run
    """.split()
)


def _load() -> tuple[object, ...]:
    return (
        require("phonenumbers"),
        require("email_validator"),
        require("stdnum.iban"),
        require("stdnum.luhn"),
    )


@dataclass
class Detector:
    """Finds PII spans in text. ``regions``: ISO countries whose national phone formats are
    recognised without a ``+`` prefix (international numbers are always recognised)."""

    regions: tuple[str, ...] = DEFAULT_REGIONS
    kinds: tuple[str, ...] = KINDS
    _finders: list[Callable[[str], Iterator[Span]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _load()
        table: dict[str, Callable[[str], Iterator[Span]]] = {
            EMAIL: _emails,
            IBAN: _ibans,
            CARD: _cards,
            NATIONAL_ID: _national_ids,
            PHONE: self._phones,
            PERSON: _persons,
        }
        unknown = set(self.kinds) - set(table)
        if unknown:
            from edgerag.errors import ConfigError

            raise ConfigError(f"unknown PII kinds {sorted(unknown)}; choose from {list(KINDS)}")
        self._finders = [table[k] for k in KINDS if k in self.kinds]

    def find(self, text: str) -> list[Span]:
        """Non-overlapping spans, left to right; overlaps go to the more specific kind."""
        found = [span for finder in self._finders for span in finder(text)]
        found.sort(key=lambda s: (_PRIORITY[s.kind], s.start, -(s.end - s.start)))
        chosen: list[Span] = []
        for span in found:
            if all(span.end <= c.start or span.start >= c.end for c in chosen):
                chosen.append(span)
        return sorted(chosen, key=lambda s: s.start)

    def _phones(self, text: str) -> Iterator[Span]:
        """Numbers valid in a region's plan. Serials, lots and ticket numbers are often valid
        phone numbers too, so a match must also look like one: a ``+`` or ``(`` prefix, a cue
        word just before it (``tel``, ``call``, ``mobile``), or the exact national grouping
        (``0161 496 0631``); a bare digit run needs the cue."""
        phonenumbers = require("phonenumbers")
        seen: set[tuple[int, int]] = set()
        grouped: set[tuple[int, int]] | None = None
        for region in self.regions:
            valid = phonenumbers.PhoneNumberMatcher(
                text, region, leniency=phonenumbers.Leniency.VALID
            )
            for match in valid:
                where = (match.start, match.end)
                if where in seen:
                    continue
                raw = match.raw_string
                ok = raw.startswith(("+", "(")) or bool(
                    _PHONE_CUE.search(text[max(0, match.start - 30) : match.start])
                )
                if not ok and not raw.isdigit():
                    if grouped is None:
                        grouped = self._exactly_grouped(text)
                    ok = where in grouped
                if ok:
                    seen.add(where)
                    yield Span(match.start, match.end, PHONE)

    def _exactly_grouped(self, text: str) -> set[tuple[int, int]]:
        phonenumbers = require("phonenumbers")
        exact = phonenumbers.Leniency.EXACT_GROUPING
        return {
            (m.start, m.end)
            for region in self.regions
            for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=exact)
        }


def _emails(text: str) -> Iterator[Span]:
    validator = require("email_validator")
    for m in _EMAIL_RE.finditer(text):
        candidate = m.group(0).rstrip(".")
        try:
            validator.validate_email(candidate, check_deliverability=False)
        except validator.EmailNotValidError:
            continue
        yield Span(m.start(), m.start() + len(candidate), EMAIL)


def _ibans(text: str) -> Iterator[Span]:
    iban = require("stdnum.iban")
    for m in _IBAN_RE.finditer(text):
        # The pattern may swallow a following word in capitals: try the longest valid prefix.
        groups = list(re.finditer(r"[A-Z0-9]+", m.group(0)))
        for n in range(len(groups), 0, -1):
            end = groups[n - 1].end()
            if iban.is_valid(m.group(0)[:end]):
                yield Span(m.start(), m.start() + end, IBAN)
                break


def _cards(text: str) -> Iterator[Span]:
    luhn = require("stdnum.luhn")
    for m in _CARD_RE.finditer(text):
        digits = _DIGITS.sub("", m.group(0))
        if len(digits) == 12:
            network = _MAESTRO_PREFIX.match(digits)
        else:
            network = _CARD_PREFIX.match(digits) or _MAESTRO_PREFIX.match(digits)
        if network and luhn.is_valid(digits):
            yield Span(m.start(), m.end(), CARD)


def _stdnum_valid(module: str, value: str) -> bool:
    return bool(require(f"stdnum.{module}").is_valid(value))


def _national_ids(text: str) -> Iterator[Span]:
    formatted: list[tuple[re.Pattern[str], Callable[[str], bool]]] = [
        (_SSN_RE, lambda v: _stdnum_valid("us.ssn", v)),
        (_NIR_RE, lambda v: _stdnum_valid("fr.nir", v)),
        (_DNI_RE, lambda v: _stdnum_valid("es.dni", v) or _stdnum_valid("es.nie", v)),
        (_CF_RE, lambda v: _stdnum_valid("it.codicefiscale", v)),
        (_NINO_RE, lambda v: True),  # no check digit exists; the format is the validation
    ]
    for pattern, valid in formatted:
        for m in pattern.finditer(text):
            if valid(m.group(0)):
                yield Span(m.start(), m.end(), NATIONAL_ID)
    for m in _CUED_ID_RE.finditer(text):
        value = m.group("id").rstrip(" -")
        if any(
            _stdnum_valid(module, value) for module in ("nl.bsn", "de.idnr", "gb.nhs", "us.ssn")
        ):
            yield Span(m.start("id"), m.start("id") + len(value), NATIONAL_ID)


def _persons(text: str) -> Iterator[Span]:
    for pattern in (_HONORIFIC_RE, _ROLE_RE):
        for m in pattern.finditer(text):
            words = m.group("name").split()
            if words[0].rstrip(".") in _NOT_NAMES or words[-1] in _NOT_NAMES:
                continue
            yield Span(m.start("name"), m.end("name"), PERSON)


def redact(text: str, spans: Iterable[Span]) -> str:
    """``text`` with every span replaced by its typed placeholder (``[EMAIL]``)."""
    out, last = [], 0
    for span in sorted(spans, key=lambda s: s.start):
        out.append(text[last : span.start])
        out.append(f"[{span.kind}]")
        last = span.end
    out.append(text[last:])
    return "".join(out)


class Scrubber:
    """Redacts text and counts what it redacted, by kind (never the values)."""

    def __init__(self, detector: Detector | None = None) -> None:
        self.detector = detector or Detector()
        self.counts: Counter[str] = Counter()

    def __call__(self, text: str) -> str:
        if not text:
            return text
        spans = self.detector.find(text)
        if not spans:
            return text
        self.counts.update(span.kind for span in spans)
        return redact(text, spans)

    def report(self) -> dict[str, int]:
        return {kind: self.counts[kind] for kind in KINDS if self.counts[kind]}
