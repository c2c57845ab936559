"""Encoder identity is a fleet invariant.

The fleet config in KV records, per vector space, the encoder that makes the fleet's vectors
(``id/version/dim``). The first node that has a space records it (first writer wins, by a
compare-and-set on the config key). A node whose encoder for a recorded space differs refuses
to serve and to ingest, and never publishes: its vectors would be searched against, or pushed
onto, replicas built with another encoder (a 64-d hash vector landing on 384-d MiniLM replicas).

A deliberate encoder change is a rolling upgrade (docs/notes/fleet.md): today the gate is that
``edgerag fleet status`` is not green while any node's encoders differ from the fleet's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgerag.errors import FleetError

if TYPE_CHECKING:
    from edgerag.encoders.base import TextEncoder
    from edgerag.fleet.shardmap import Membership
    from edgerag.store.ops import Op


def encoder_id(encoder: str, version: str, dim: int) -> str:
    return f"{encoder}/{version}/{dim}d"


def text_encoder_id(encoder: TextEncoder) -> str:
    """The id a text encoder's vectors carry in the fleet config."""
    return encoder_id(encoder.id, encoder.version, int(encoder.dim))


def engine_encoders(indexes: dict[str, Any]) -> dict[str, str]:
    """``space → encoder id`` of an engine's indexes."""
    return {
        name: encoder_id(idx.spec.encoder, idx.spec.version, int(idx.spec.dim))
        for name, idx in indexes.items()
    }


def op_encoders(op: Op) -> dict[str, str]:
    """``space → encoder id`` of the vectors an op carries."""
    return {
        space: encoder_id(sv.encoder, sv.version, int(sv.vectors.shape[1]))
        for space, sv in op.vectors.items()
        if sv.vectors.ndim == 2
    }


def mismatches(fleet: dict[str, str], mine: dict[str, str]) -> list[str]:
    """One sentence per space whose encoder differs from the fleet's."""
    return [
        f"{space} space: this node encodes with {mine[space]}, the fleet with {fleet[space]}"
        for space in sorted(mine)
        if space in fleet and fleet[space] != mine[space]
    ]


class EncoderGuard:
    """Checks every op before it is published: its vectors must be the fleet's encoders.

    A space nobody has recorded yet (the first image ever ingested opens the visual space) is
    recorded first, so the first publisher defines it and later ones are held to it.
    """

    def __init__(self, membership: Membership, recorded: dict[str, str]) -> None:
        self.membership = membership
        self.recorded = dict(recorded)

    async def check(self, op: Op) -> None:
        """Raise :class:`FleetError` when ``op`` carries vectors of another encoder."""
        theirs = op_encoders(op)
        if any(space not in self.recorded for space in theirs):
            config = await self.membership.record_encoders(theirs)
            self.recorded = dict(config.encoders)
        problems = mismatches(self.recorded, theirs)
        if problems:
            raise FleetError(f"not publishing {op.doc_id!r}: " + "; ".join(problems))
