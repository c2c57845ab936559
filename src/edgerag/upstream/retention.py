"""Retention and cold tiering: evict old items from the edge once upstream holds them.

A policy says, per modality, how long items stay on the edge (``max_age``) and how many bytes
of documents of that modality the edge keeps (``max_bytes``, counted as the documents' original
sizes, oldest evicted first). A document is evicted only when

1. every op that wrote it is at or below the upstream's durable ``shipped_lsn``, and
2. the upstream, asked now, holds as many points of it in every space as the edge does.

Eviction is a local delete with origin ``retention:…``: the sink does not ship it, so the items
stay searchable through the upstream scope. An item that upstream has not acknowledged is never
dropped — the edge keeps it, whatever the policy says.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgerag.errors import ConfigError
from edgerag.retrieval.window import parse_duration
from edgerag.store.ops import DELETE, Op
from edgerag.types import Modality
from edgerag.upstream.base import Upstream
from edgerag.upstream.sink import RETENTION_ORIGIN
from edgerag.upstream.state import UpstreamState

if TYPE_CHECKING:
    from edgerag.engine import Engine

logger = logging.getLogger(__name__)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MODALITIES = [m.value for m in Modality]


def parse_size(text: str) -> int:
    """``"500MB"``, ``"1.5g"``, ``"2048"`` → bytes (binary multiples)."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"size {text!r}: use a number with k, M, G or T (500MB, 2G)")
    return int(float(match.group(1)) * _FACTORS[match.group(2).lower()])


@dataclass
class RetentionPolicy:
    max_age_s: dict[str, float] = field(default_factory=dict)  # modality → seconds
    max_bytes: dict[str, int] = field(default_factory=dict)  # modality → bytes on the edge

    @classmethod
    def parse(cls, max_age: list[str], max_bytes: list[str]) -> RetentionPolicy:
        """From CLI pairs ``MODALITY=VALUE`` (``image=7d``, ``audio=500MB``)."""
        policy = cls()
        for pairs, target, parse in (
            (max_age, policy.max_age_s, parse_duration),
            (max_bytes, policy.max_bytes, parse_size),
        ):
            for pair in pairs:
                modality, sep, value = pair.partition("=")
                if not sep or modality not in MODALITIES:
                    raise ConfigError(f"{pair!r}: use MODALITY=VALUE with one of {MODALITIES}")
                target[modality] = parse(value)  # type: ignore[operator]
        return policy

    def to_json(self) -> str:
        return json.dumps({"max_age_s": self.max_age_s, "max_bytes": self.max_bytes})

    @classmethod
    def from_json(cls, text: str) -> RetentionPolicy:
        data = json.loads(text or "{}")
        return cls(data.get("max_age_s", {}), data.get("max_bytes", {}))

    def __bool__(self) -> bool:
        return bool(self.max_age_s or self.max_bytes)


@dataclass
class EvictionReport:
    evicted: list[str] = field(default_factory=list)
    kept_unacknowledged: list[str] = field(default_factory=list)  # due, but not safe yet
    freed_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "evicted": len(self.evicted),
            "kept_unacknowledged": len(self.kept_unacknowledged),
            "freed_bytes": self.freed_bytes,
        }


def due(state: UpstreamState, policy: RetentionPolicy, now: float) -> list[dict[str, Any]]:
    """Documents the policy wants off the edge, oldest first (safety is checked later)."""
    out: dict[str, dict[str, Any]] = {}
    for modality in MODALITIES:
        docs = state.documents(modality)
        if modality in policy.max_age_s:
            cutoff = now - policy.max_age_s[modality]
            out.update({d["doc_id"]: d for d in docs if d["created"] < cutoff})
        if modality in policy.max_bytes:
            total = sum(d["size"] for d in docs)
            for d in docs:  # oldest first until the modality fits
                if total <= policy.max_bytes[modality]:
                    break
                out.setdefault(d["doc_id"], d)
                total -= d["size"]
    return sorted(out.values(), key=lambda d: (d["created"], d["doc_id"]))


def acknowledged(engine: Engine, upstream: Upstream, doc: dict[str, Any], shipped: int) -> bool:
    """Upstream durably holds the document as the edge has it (see the module docstring)."""
    if doc["lsn"] > shipped:
        return False
    keys = np.array(engine.store.doc_keys(doc["doc_id"]), dtype=np.int64)
    for space in engine.store.spaces():
        present, _ = engine.store.vectors(space, keys)
        if len(present) and upstream.count_doc(space, doc["doc_id"]) != len(present):
            return False
    return True


def evict(
    engine: Engine,
    upstream: Upstream,
    state: UpstreamState,
    name: str = "default",
    policy: RetentionPolicy | None = None,
    now: float | None = None,
) -> EvictionReport:
    """Apply the retention policy (the upstream's stored one by default) once."""
    policy = (
        policy if policy is not None else RetentionPolicy.from_json(state.row(name)["retention"])
    )
    report = EvictionReport()
    if not policy:
        return report
    shipped = state.shipped_lsn(name)
    for doc in due(state, policy, now if now is not None else time.time()):
        if not acknowledged(engine, upstream, doc, shipped):
            report.kept_unacknowledged.append(doc["doc_id"])
            continue
        engine.apply(Op(kind=DELETE, doc_id=doc["doc_id"], origin=f"{RETENTION_ORIGIN}{name}"))
        report.evicted.append(doc["doc_id"])
        report.freed_bytes += int(doc["size"])
    if report.evicted or report.kept_unacknowledged:
        logger.info("retention %s: %s", name, report.to_dict())
    return report
