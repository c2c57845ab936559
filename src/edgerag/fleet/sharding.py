"""Rendezvous (highest-random-weight) hashing: document → shard, shard → replica nodes.

Rendezvous hashing needs no ring state: every process computes the same answer from the ids
alone, and adding a node moves only the replicas that the new node wins (about R/N of them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from edgerag.errors import ConfigError


def _weight(*parts: str) -> int:
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_for(doc_id: str, shards: int) -> int:
    """The shard (0 … shards-1) that owns ``doc_id``."""
    if shards < 1:
        raise ConfigError("shards must be >= 1")
    return max(range(shards), key=lambda s: _weight(doc_id, str(s)))


def replicas_for(shard: int, nodes: Iterable[str], replicas: int) -> list[str]:
    """The ``replicas`` nodes that hold ``shard``, best first (fewer if there are fewer nodes)."""
    ranked = sorted(set(nodes), key=lambda n: (-_weight(f"shard-{shard}", n), n))
    return ranked[:replicas]


def assign(shards: int, nodes: Iterable[str], replicas: int) -> dict[int, list[str]]:
    """The whole shard map: shard → replica nodes."""
    members = sorted(set(nodes))
    return {s: replicas_for(s, members, replicas) for s in range(shards)}


def doc_subject_token(doc_id: str) -> str:
    """A subject-safe token for a document id (ids may hold dots, slashes, spaces)."""
    return hashlib.blake2b(doc_id.encode(), digest_size=10).hexdigest()
