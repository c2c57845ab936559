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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from edgerag.errors import ConfigError

Filters = Mapping[str, Any]
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_COLUMNS = {"modality": "i.modality", "doc_id": "i.doc_id", "page": "i.page"}


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


def _clause(key: str, value: Any, params: list[Any]) -> str:
    values = _as_list(value)
    if not values:
        raise ConfigError(f"filter {key}: empty list of values")
    if key in _COLUMNS:
        return _in(_COLUMNS[key], [_coerce(v) if key == "page" else v for v in values], params)
    if key == "source":
        parts = []
        for v in values:
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
        params.append(_timestamp(key, value))
        return "d.created >= ?" if key == "ingested_after" else "d.created <= ?"
    if key in ("time_from", "time_to"):
        try:
            params.append(float(value))
        except (TypeError, ValueError):
            raise ConfigError(f"filter {key}: {value!r} is not a number of seconds") from None
        return "COALESCE(i.t_end, i.t_start) >= ?" if key == "time_from" else "i.t_start <= ?"
    if not _KEY.match(key):
        raise ConfigError(f"filter key {key!r} is not a valid metadata key")
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
