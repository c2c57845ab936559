"""A labelled synthetic PII set, generated (seeded) with Faker: shift-log and maintenance-style
snippets with known PII spans, plus hard negatives that look like PII to a careless pattern
(part numbers, serials, long digit runs, timestamps, dates, torque values, IP addresses).

Used by ``benchmarks/pii_bench.py`` and the tests; nothing here is stored data.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

from edgerag._optional import require
from edgerag.privacy.pii import CARD, EMAIL, IBAN, NATIONAL_ID, PERSON, PHONE, Span

LOCALES = {  # Faker locale → phone region
    "en_US": "US",
    "en_GB": "GB",
    "de_DE": "DE",
    "nl_NL": "NL",
    "fr_FR": "FR",
    "es_ES": "ES",
    "it_IT": "IT",
}
REGIONS = tuple(LOCALES.values())


@dataclass
class Snippet:
    text: str
    spans: list[Span] = field(default_factory=list)
    locale: str = "en_US"


class _Builder:
    """Concatenates literal text and labelled values, recording each value's span."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[Span] = []
        self.length = 0

    def text(self, value: str) -> _Builder:
        self.parts.append(value)
        self.length += len(value)
        return self

    def pii(self, value: str, kind: str) -> _Builder:
        self.spans.append(Span(self.length, self.length + len(value), kind))
        return self.text(value)

    def build(self, locale: str) -> Snippet:
        return Snippet("".join(self.parts), self.spans, locale)


def _nino(rng: random.Random) -> str:
    first = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}:
        first, second = "A", "B"
    digits = "".join(rng.choice(string.digits) for _ in range(6))
    return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {rng.choice('ABCD')}"


def _national_id(fake: object, locale: str, rng: random.Random) -> tuple[str, str]:
    """(cue text before the id, the id) for the locale's national id."""
    f: object = fake
    if locale == "en_US":
        return rng.choice(["SSN ", "social security number ", "SSN: "]), f.ssn()  # type: ignore[attr-defined]
    if locale == "en_GB":
        return rng.choice(["NI number ", "NINO ", "National Insurance "]), _nino(rng)
    if locale == "nl_NL":
        return rng.choice(["BSN ", "BSN: ", "burgerservicenummer "]), f.ssn()  # type: ignore[attr-defined]
    if locale == "fr_FR":
        return rng.choice(["NIR ", "n° sécu ", ""]), f.ssn()  # type: ignore[attr-defined]
    if locale == "es_ES":
        return rng.choice(["DNI ", "NIE ", "DNI: "]), rng.choice([f.nif, f.nie])()  # type: ignore[attr-defined]
    if locale == "it_IT":
        return rng.choice(["codice fiscale ", "CF ", ""]), f.ssn()  # type: ignore[attr-defined]
    stdnum_idnr = require("stdnum.de.idnr")
    while True:  # German Steuer-IdNr: random digits until the checksum passes
        value = "".join(rng.choice(string.digits) for _ in range(11))
        if value[0] != "0" and stdnum_idnr.is_valid(value):
            return rng.choice(["IdNr ", "Steuer-ID ", "IdNr: "]), value


_PART = ["KX40-CPL-140E", "KX40-SEAL-22", "KL-2", "P-2A", "P-2B", "T-201", "FT-201", "SB-2026-03"]
_ALARM = ["E-107", "E-119", "E-204", "W-12", "A-03"]


_NEGATIVES = [
    "Replaced {part} on {part2}, serial KX40-{n4}.",
    "Alarm {alarm} at 2026-{mm}-{dd} {hh}:{mi}:{ss}.",
    "Torque gland bolts to {torque} N.m, then {torque2} N.m in a star pattern.",
    "Suction {bar1} bar, discharge {bar2} bar, flow {flow} m3/h.",
    "Serial number {digits}, lot {n6}-{n4}.",
    "Order PO-{po} for {qty} x {part}.",
    "Controller at 10.{b1}.{b2}.{b3} runs firmware v{v1}.{v2}.{v3}.",
    "Operator: {not_name} at {hh}:{mi}.",
    "Run hours {hours} h, next service at {hours2} h (interval 2,000 h).",
    "Part no. {digits4}-{digits4b}-{digits_rest} fits skids built 2019-2026.",
    "Vibration {vib} mm/s at {rpm} rpm; DE bearing {temp} C.",
    "Ticket #{digits} closed {dd}/{mm}/2026 {hh}:{mi}.",
]


def _negative(rng: random.Random) -> str:
    """A technical line with no PII but plenty of digits, codes and capitals."""
    r = rng.randint
    digits = "".join(rng.choice(string.digits) for _ in range(rng.choice([9, 10, 11, 12, 16])))
    values = {
        "part": rng.choice(_PART),
        "part2": rng.choice(_PART),
        "alarm": rng.choice(_ALARM),
        "n4": f"{r(1, 9999):04d}",
        "n6": r(100000, 999999),
        "mm": f"{r(1, 12):02d}",
        "dd": f"{r(1, 28):02d}",
        "hh": f"{r(0, 23):02d}",
        "mi": f"{r(0, 59):02d}",
        "ss": f"{r(0, 59):02d}",
        "torque": r(18, 40),
        "torque2": r(40, 90),
        "bar1": f"{rng.uniform(0.5, 2):.1f}",
        "bar2": f"{rng.uniform(4, 7):.1f}",
        "flow": r(90, 140),
        "digits": digits,
        "digits4": digits[:4],
        "digits4b": digits[4:8],
        "digits_rest": digits[8:],
        "po": r(4500000000, 4599999999),
        "qty": r(1, 20),
        "b1": r(0, 255),
        "b2": r(0, 255),
        "b3": r(1, 254),
        "v1": r(1, 9),
        "v2": r(0, 30),
        "v3": r(0, 99),
        "not_name": rng.choice(["Check seal", "Pump P-2A", "None", "Duty swap"]),
        "hours": r(1000, 99999),
        "hours2": r(1000, 99999),
        "vib": f"{rng.uniform(0.5, 7):.1f}",
        "rpm": r(1450, 2980),
        "temp": r(40, 80),
    }
    return rng.choice(_NEGATIVES).format(**values)


def generate(n: int = 600, seed: int = 13) -> list[Snippet]:
    """``n`` snippets: about two thirds carry 1-3 PII values, the rest are hard negatives only.
    Every snippet mixes in technical text that must survive."""
    faker_mod = require("faker")
    rng = random.Random(seed)
    fakers = {}
    for i, locale in enumerate(LOCALES):
        fakers[locale] = faker_mod.Faker(locale)
        fakers[locale].seed_instance(seed * 100 + i)
    out = []
    for _ in range(n):
        locale = rng.choice(list(LOCALES))
        fake = fakers[locale]
        b = _Builder()
        b.text(_negative(rng) + " ")
        if rng.random() < 0.35:
            out.append(b.text(_negative(rng)).build(locale))
            continue
        for _ in range(rng.randint(1, 3)):
            _add_pii(b, fake, locale, rng)
            b.text(" " + _negative(rng) + " ")
        out.append(b.build(locale))
    return out


def _add_pii(b: _Builder, fake: object, locale: str, rng: random.Random) -> None:
    f: object = fake
    kind = rng.choice([EMAIL, PHONE, IBAN, CARD, NATIONAL_ID, PERSON, PERSON])
    if kind == EMAIL:
        b.text(rng.choice(["Mail ", "Send the report to ", "contact: "]))
        b.pii(f.email(), EMAIL).text(".")  # type: ignore[attr-defined]
    elif kind == PHONE:
        if rng.random() < 0.7:
            b.text(rng.choice(["Call ", "Phone ", "On-call mobile ", "tel. ", "Fax: "]))
            b.pii(f.phone_number(), PHONE).text(" for access.")  # type: ignore[attr-defined]
        else:  # no cue word: only the number's own format says it is one
            b.text(rng.choice(["Vendor desk ", "Night cover at ", "Gate lodge, "]))
            b.pii(f.phone_number(), PHONE).text(".")  # type: ignore[attr-defined]
    elif kind == IBAN:
        iban = f.iban()  # type: ignore[attr-defined]
        if rng.random() < 0.5:  # printed in groups of four
            iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        b.text("Refund to IBAN ").pii(iban, IBAN).text(".")
    elif kind == CARD:
        card = f.credit_card_number()  # type: ignore[attr-defined]
        if rng.random() < 0.5 and len(card) == 16:
            card = " ".join(card[i : i + 4] for i in range(0, 16, 4))
        b.text("Paid the spare parts with card ").pii(card, CARD).text(".")
    elif kind == NATIONAL_ID:
        cue, value = _national_id(fake, locale, rng)
        b.text("Visitor badge issued, ID checked: " + cue).pii(value, NATIONAL_ID).text(".")
    else:
        name = f"{f.first_name()} {f.last_name()}"  # type: ignore[attr-defined]
        style = rng.random()
        if style < 0.4:
            cue = rng.choice(["Operator: ", "Signed off by ", "Technician ", "Reported by "])
            b.text(cue).pii(name, PERSON).text(".")
        elif style < 0.6:
            b.text(rng.choice(["Dr. ", "Mr ", "Mrs. ", "Ms "]))
            b.pii(f.last_name(), PERSON).text(" inspected the skid.")  # type: ignore[attr-defined]
        else:  # a bare name in prose: no cue (the hard case without an NER model)
            b.pii(name, PERSON).text(rng.choice([" replaced the seal.", " will be on site."]))
