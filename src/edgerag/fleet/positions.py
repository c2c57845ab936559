"""Where a replica stands in the replication log, taken from its own store.

A replica's applied position per (shard, modality) is the stream sequence of the last op of
that subject filter it has applied, kept in the ``meta`` table of the replica's own store. It is
written after the ops' own transaction commits and before the consumer acks them, so at every
instant ``consumer ack floor <= stored position <= what the store really holds``. Hence:

* a wiped disk, an old backup put back, or a new machine started with an existing ``--node-id``
  has a stored position *below* its durable consumer's ack floor — the consumer's state is
  about data this store no longer has. The replicator then recreates the consumer from the
  stored position + 1 (a full replay when it is 0) instead of resuming at the ack floor;
* a replica is *complete* when its stored position reaches the shard's high-water mark (the
  stream's last sequence on that subject filter) as observed when its recovery began. Only then
  does it join the read queue group.

The ops stream keeps every op (no age, size or count limit), so a replay from any position is
complete. If an operator adds ``max_msgs_per_subject=1`` the replay is still complete (the last
op of every document is its state). If an age or size limit ever drops ops a replica has not
applied, :func:`replay_gap` reports it and the replica stays out of reads (a snapshot from a
serving peer would be needed; not built, see docs/notes/fleet.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgerag._optional import require
from edgerag.fleet.nats import Names

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from edgerag.store.sqlite import Store


class StoredPositions:
    """Applied log sequence per (shard, modality), persisted in the replica's store."""

    def __init__(self, store: Store, collection: str) -> None:
        self.store = store
        self.prefix = f"fleet.{collection}.pos."

    def _key(self, shard: int, modality: str) -> str:
        return f"{self.prefix}{shard}.{modality}"

    def get(self, shard: int, modality: str) -> int:
        raw = self.store.meta(self._key(shard, modality)).get(self._key(shard, modality))
        return int(raw) if raw else 0

    def set(self, shard: int, modality: str, seq: int) -> None:
        self.store.set_meta({self._key(shard, modality): str(seq)})

    def reset(self, shard: int, modalities: list[str]) -> None:
        """Forget a shard (its documents are evicted): if it comes back, it replays."""
        self.store.set_meta({self._key(shard, m): "0" for m in modalities})


async def high_water(js: JetStreamContext, names: Names, shard: int, modality: str) -> int:
    """The stream sequence of the last op of ``shard``/``modality`` (0 when there is none)."""
    errors = require("nats.js.errors")
    try:
        msg = await js.get_last_msg(names.ops_stream, names.ops(shard, modality), direct=True)
    except errors.NotFoundError:
        return 0
    return int(msg.seq or 0)


async def replay_gap(js: JetStreamContext, names: Names, position: int) -> str | None:
    """Why replaying from ``position`` cannot be complete, or None when it can."""
    info = await js.stream_info(names.ops_stream)
    config, first = info.config, int(info.state.first_seq or 0)
    drops = (config.max_age or 0) > 0 or (config.max_bytes or -1) > 0 or (config.max_msgs or -1) > 0
    if drops and first > position + 1:
        return (
            f"the ops stream no longer holds ops {position + 1}..{first - 1} "
            "(age/size limits): a replay cannot prove this replica complete"
        )
    return None
