"""Rolling time windows over ingest time: ``--since 10m`` → ``ingested_after = now - 600``."""

from __future__ import annotations

import re
import time
from typing import Any

from edgerag.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """``"90s"``, ``"10m"``, ``"2h"``, ``"7d"``, ``"1w"`` → seconds."""
    match = _SPAN.match(text)
    if not match:
        raise ConfigError(f"duration {text!r}: use a number and a unit s, m, h, d or w (10m, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def since_filter(
    filters: dict[str, Any] | None, since: str | None, now: float | None = None
) -> dict[str, Any]:
    """``filters`` plus ``ingested_after`` for a rolling window ending now (the later bound wins
    when the caller gave one too)."""
    out = dict(filters or {})
    if since:
        start = (now if now is not None else time.time()) - parse_duration(since)
        given = out.get("ingested_after")
        out["ingested_after"] = start if given is None else max(float(given), start)
    return out
