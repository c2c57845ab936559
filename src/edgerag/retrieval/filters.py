"""Metadata filters → one SQL WHERE clause over the ``items`` table (alias ``i``).

A filter is a mapping; every entry must hold (AND). A list value means any of (IN).

* ``modality``: "text" | "image" | "audio" | "video"
* ``doc_id``: exact document id
* ``source``: exact path/name, or a glob with ``*``/``?`` (``manuals/*.pdf``)
* ``tags``: the item carries this tag (metadata ``tags`` list)
* ``page``: page number
* ``ingested_after`` / ``ingested_before``: unix seconds or ISO-8601 date/time
* ``time_from`` / ``time_to``: media time range in seconds (items overlapping it)
* anything else: ``metadata[key] == value`` (numbers compared as numbers)

A value outside a built-in key's domain (``modality=txt``, ``page=abc``), a malformed glob
(an unclosed ``[``, a reversed range ``[z-a]``), an empty value, a nested value or a key that
cannot name metadata raises :class:`ConfigError` naming the key and what is allowed: a typo must
not pass as "no results". A well-formed metadata filter that matches nothing is not an error
(the key may simply not be in this collection yet).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from edgerag.errors import ConfigError
from edgerag.types import Modality

Filters = Mapping[str, Any]
# Metadata keys: dotted segments (``site``, ``specs.rating``), each a JSON-path-safe name.
_KEY = re.compile(r"^(?=.{1,64}$)[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
_COLUMNS = {"modality": "i.modality", "doc_id": "i.doc_id", "page": "i.page"}
_MODALITIES = tuple(m.value for m in Modality)
BUILT_IN_KEYS = (
    "modality",
    "doc_id",
    "source",
    "tags",
    "page",
    "ingested_after",
    "ingested_before",
    "time_from",
    "time_to",
)
_SINGLE_VALUED = ("ingested_after", "ingested_before", "time_from", "time_to")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | set) else [value]


def _coerce(value: Any) -> Any:
    """CLI filters arrive as strings; compare numbers as numbers."""
    if isinstance(value, str):
        for cast in (int, float):
            try:
                return cast(value)
            except ValueError:
                pass
    return value


def _timestamp(key: str, value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(f"filter {key}: {value!r} is not unix seconds or an ISO date") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _in(expr: str, values: list[Any], params: list[Any]) -> str:
    params.extend(values)
    if len(values) == 1:
        return f"{expr} = ?"
    return f"{expr} IN ({','.join('?' * len(values))})"


def _page(value: Any) -> int:
    number = _coerce(value)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ConfigError(f"filter page: {value!r} is not a page number (a whole number >= 1)")
    return number


def _check_glob(pattern: str) -> None:
    """Reject glob patterns SQLite would accept but that cannot mean what was typed."""
    i = 0
    while i < len(pattern):
        if pattern[i] != "[":
            i += 1
            continue
        j = i + 1 + (pattern[i + 1 : i + 2] == "^")
        j += pattern[j : j + 1] == "]"  # a ']' first in the set is a literal
        end = pattern.find("]", j)
        if end < 0:
            raise ConfigError(
                f"filter source: {pattern!r} has an unclosed '[' (a set like [abc] or [0-9]; "
                "use * and ? for wildcards)"
            )
        body = pattern[j:end]
        for m in re.finditer(r"(.)-(.)", body):
            if m.group(1) > m.group(2):
                raise ConfigError(
                    f"filter source: {pattern!r} has a reversed range [{m.group(0)}] "
                    f"(write [{m.group(2)}-{m.group(1)}])"
                )
        i = end + 1


def _check_values(key: str, values: list[Any]) -> None:
    if not values:
        raise ConfigError(f"filter {key}: empty list of values")
    if key in _SINGLE_VALUED and len(values) > 1:
        raise ConfigError(f"filter {key}: takes one value, got {len(values)}")
    for v in values:
        if v is None or isinstance(v, Mapping | list | tuple | set):
            raise ConfigError(
                f"filter {key}: {v!r} is not a value (give a string or number, or a list of them)"
            )
        if key in ("doc_id", "source", "tags") and not str(v).strip():
            raise ConfigError(f"filter {key}: empty value")
    if key == "modality":
        bad = [v for v in values if v not in _MODALITIES]
        if bad:
            raise ConfigError(
                f"filter modality: {bad[0]!r} is not a modality; allowed: {', '.join(_MODALITIES)}"
            )


def validate_filters(filters: Filters | None) -> None:
    """Raise :class:`ConfigError` for a filter that cannot mean what was typed (see module doc)."""
    for key, value in (filters or {}).items():
        _clause(key, value, [])


def _clause(key: str, value: Any, params: list[Any]) -> str:
    if not isinstance(key, str) or (key not in BUILT_IN_KEYS and not _KEY.match(key)):
        raise ConfigError(
            f"filter key {key!r} is not valid: built-in keys are {', '.join(BUILT_IN_KEYS)}; "
            "metadata keys are names of letters, digits, _ and - (dots for nested: specs.rating)"
        )
    values = _as_list(value)
    _check_values(key, values)
    if key == "page":
        return _in(_COLUMNS[key], [_page(v) for v in values], params)
    if key in _COLUMNS:
        return _in(_COLUMNS[key], values, params)
    if key == "source":
        parts = []
        for v in values:
            _check_glob(str(v))
            params.append(str(v))
            parts.append("d.source GLOB ?" if any(c in str(v) for c in "*?[") else "d.source = ?")
        return "(" + " OR ".join(parts) + ")"
    if key == "tags":
        params.extend(str(v) for v in values)
        marks = ",".join("?" * len(values))
        return (
            f"EXISTS (SELECT 1 FROM json_each(i.metadata, '$.tags') t WHERE t.value IN ({marks}))"
        )
    if key in ("ingested_after", "ingested_before"):
        params.append(_timestamp(key, values[0]))
        return "d.created >= ?" if key == "ingested_after" else "d.created <= ?"
    if key in ("time_from", "time_to"):
        try:
            params.append(float(values[0]))
        except (TypeError, ValueError):
            raise ConfigError(f"filter {key}: {values[0]!r} is not a number of seconds") from None
        return "COALESCE(i.t_end, i.t_start) >= ?" if key == "time_from" else "i.t_start <= ?"
    return _in(f"json_extract(i.metadata, '$.{key}')", [_coerce(v) for v in values], params)


def where_clause(filters: Filters | None) -> tuple[str, list[Any]]:
    """Return ``(sql, params)``; ``sql`` is ``"1"`` when there is no filter."""
    if not filters:
        return "1", []
    params: list[Any] = []
    clauses = [_clause(key, value, params) for key, value in sorted(filters.items())]
    return " AND ".join(clauses), params


def parse_cli_filters(pairs: list[str]) -> dict[str, Any]:
    """``["modality=text", "tags=pump", "tags=seal"]`` → ``{"modality": "text", "tags": [...]}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"filter {pair!r} is not KEY=VALUE")
        if key in out:
            out[key] = _as_list(out[key]) + [value]
        else:
            out[key] = value
    return out
