"""Upstream tiers: ship the op log into Qdrant or Milvus, query them when the edge can't answer.

* :mod:`~edgerag.upstream.base` — the backend contract and :class:`UpstreamSpec`.
* :mod:`~edgerag.upstream.qdrant`, :mod:`~edgerag.upstream.milvus` — one file per backend
  (extras ``qdrant`` and ``milvus``).
* :mod:`~edgerag.upstream.sink` — the op-log shipper with a durable shipped LSN.
* :mod:`~edgerag.upstream.federated` — edge-first search with an upstream scope.
* :mod:`~edgerag.upstream.retention` — evict from the edge only what upstream acknowledged.
"""

from edgerag.upstream.base import Upstream, UpstreamMismatchError, UpstreamSpec, open_upstream

__all__ = ["Upstream", "UpstreamMismatchError", "UpstreamSpec", "open_upstream"]
