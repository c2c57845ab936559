"""A fleet node process for the fleet tests (real process, real NATS).

Nodes use the hash encoder and the exact flat index: these tests verify replication, routing
and drift handling, not embedding quality. ``--skew`` gives the node an encoder of another
version whose vectors differ (a botched rolling upgrade): on open the engine re-embeds every
stored item with it. ``--dim`` gives the hash encoder another dimension (64-d beside 384-d is
the skew seen in the field). Either way the node's encoder is not the fleet's: it must refuse.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from edgerag import Engine, EngineConfig, IndexConfig
from edgerag.encoders.fake import HashEncoder
from edgerag.fleet.node import run_node
from edgerag.fleet.policy import Policies
from edgerag.fleet.shardmap import FleetConfig
from edgerag.types import Vectors


class SkewedHashEncoder(HashEncoder):
    """Same id and dimension, another version, different vectors (salted buckets)."""

    version = "2-skewed"

    def encode(self, texts: Sequence[str]) -> Vectors:
        return super().encode([f"{t} skew salt tokens" for t in texts])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nats", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--policy", action="append", default=[])
    parser.add_argument("--heartbeat", type=float, default=0.5)
    parser.add_argument("--drift-interval", type=float, default=1.0)
    parser.add_argument("--skew", action="store_true")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--no-ingest", action="store_true")
    parser.add_argument("--http-port", type=int, default=None)
    args = parser.parse_args()
    faulthandler.register(signal.SIGUSR1)  # stack dump on demand (debugging hangs)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"{args.node_id} %(levelname)s %(name)s: %(message)s",
    )
    config = EngineConfig(
        encoder="hash",
        index=IndexConfig(backend="flat", quantization="f32"),
        synchronous="NORMAL",
    )
    encoder = SkewedHashEncoder(args.dim) if args.skew else HashEncoder(args.dim)
    engine = Engine.open(args.db, config, encoder=encoder)
    fleet = FleetConfig(
        shards=args.shards,
        replicas=args.replicas,
        policies=Policies().with_overrides(args.policy),
        heartbeat_s=args.heartbeat,
        drift_interval_s=args.drift_interval,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_node(
            engine,
            args.nats,
            args.node_id,
            fleet,
            http_port=args.http_port,
            ingest=not args.no_ingest,
            stop=stop,
        )
    finally:
        engine.close()


if __name__ == "__main__":
    main()
