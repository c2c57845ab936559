"""Per-modality sync policies: how stale and how drifted a replica may be before it stops serving.

Defaults come from the product brief: text may lag 30 s and drift 0.05 (mean cosine
deviation); image and audio (and video, which carries both) 5 s and 0.02.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from edgerag.errors import ConfigError
from edgerag.types import Modality

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncPolicy:
    """Freshness and fidelity limits of one modality.

    Attributes:
        max_lag_s: a replica whose oldest unapplied op is older than this is quarantined.
        drift_threshold: a replica whose sampled mean cosine deviation from the log's canonical
            vectors exceeds this is quarantined.
        retries: reconcile attempts before the replica is marked failed (stays out of reads).
    """

    max_lag_s: float
    drift_threshold: float
    retries: int = 3

    def __post_init__(self) -> None:
        if self.max_lag_s <= 0:
            raise ConfigError(f"max_lag_s must be > 0, got {self.max_lag_s}")
        if not 0 <= self.drift_threshold <= 2:
            raise ConfigError(f"drift_threshold must be in [0, 2], got {self.drift_threshold}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")


DEFAULT_POLICIES: dict[str, SyncPolicy] = {
    Modality.TEXT.value: SyncPolicy(30.0, 0.05, 3),
    Modality.IMAGE.value: SyncPolicy(5.0, 0.02, 3),
    Modality.AUDIO.value: SyncPolicy(5.0, 0.02, 3),
    Modality.VIDEO.value: SyncPolicy(5.0, 0.02, 3),
}


@dataclass(frozen=True)
class Policies:
    """The policy of every modality; a modality without its own entry gets ``fallback``."""

    by_modality: dict[str, SyncPolicy] = field(default_factory=lambda: dict(DEFAULT_POLICIES))
    fallback: SyncPolicy = DEFAULT_POLICIES[Modality.TEXT.value]

    def __getitem__(self, modality: str) -> SyncPolicy:
        return self.by_modality.get(modality, self.fallback)

    @property
    def modalities(self) -> list[str]:
        return sorted(self.by_modality)

    @property
    def min_lag_s(self) -> float:
        return min(p.max_lag_s for p in self.by_modality.values())

    def to_dict(self) -> dict[str, Any]:
        return {m: asdict(p) for m, p in self.by_modality.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policies:
        merged = dict(DEFAULT_POLICIES)
        for modality, value in data.items():
            merged[modality] = SyncPolicy(**value)
        return cls(merged)

    def with_overrides(self, specs: list[str]) -> Policies:
        """Apply ``MODALITY=MAX_LAG_S:DRIFT[:RETRIES]`` overrides (CLI ``--policy``)."""
        merged = dict(self.by_modality)
        for spec in specs:
            modality, policy = parse_policy(spec)
            merged[modality] = policy
        return Policies(merged)


def parse_policy(spec: str) -> tuple[str, SyncPolicy]:
    """Parse ``image=5:0.02:3`` into ``("image", SyncPolicy(5, 0.02, 3))``."""
    modality, sep, rest = spec.partition("=")
    parts = rest.split(":")
    if not sep or not modality or len(parts) not in (2, 3):
        raise ConfigError(f"policy {spec!r} is not MODALITY=MAX_LAG_S:DRIFT[:RETRIES]")
    try:
        lag, drift = float(parts[0]), float(parts[1])
        retries = int(parts[2]) if len(parts) == 3 else 3
    except ValueError as exc:
        raise ConfigError(f"policy {spec!r}: {exc}") from exc
    return modality.strip(), SyncPolicy(lag, drift, retries)
