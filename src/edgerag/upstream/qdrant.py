"""Qdrant upstream through ``qdrant-client``: a server or cluster URL, or local mode.

Local mode (``QdrantClient(path=...)`` or ``":memory:"``) speaks the same client API as a server,
which is what the tests run against. A URL with ``https://`` uses TLS; the API key comes from the
environment (see :class:`~edgerag.upstream.base.UpstreamSpec`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from edgerag._optional import require
from edgerag.types import SpaceSpec
from edgerag.upstream.base import (
    META_ENCODER,
    META_SPACE,
    META_VERSION,
    Point,
    Upstream,
    UpstreamHit,
    UpstreamSpec,
    check_encoder,
    normalize_filters,
    space_collection,
)

logger = logging.getLogger(__name__)
BATCH = 256


class QdrantUpstream(Upstream):
    kind = "qdrant"

    def __init__(self, spec: UpstreamSpec, timeout_s: float = 10.0) -> None:
        super().__init__(spec, timeout_s)
        qc = require("qdrant_client")
        self.models = require("qdrant_client.models")
        if spec.is_url:
            # No version probe at construction: an unreachable upstream must not hold up the
            # edge's startup; the sink finds out at its first call and retries.
            self.client = qc.QdrantClient(
                url=spec.target,
                api_key=spec.api_key(),
                timeout=max(1, int(timeout_s)),
                check_compatibility=False,
            )
        elif spec.target == ":memory:":
            self.client = qc.QdrantClient(location=":memory:")
        else:
            self.client = qc.QdrantClient(path=spec.target)
        if not spec.is_url:  # local mode is not thread-safe; the server handles concurrency
            self.client = _Locked(self.client)

    def _name(self, space: str) -> str:
        return space_collection(self.spec.collection, space)

    def ensure_space(self, spec: SpaceSpec) -> None:
        if spec.name in self.ensured:
            return
        m, name = self.models, self._name(spec.name)
        if self.client.collection_exists(name):
            config = self.client.get_collection(name).config
            vectors = config.params.vectors
            dim = vectors.size if hasattr(vectors, "size") else None
            check_encoder(name, dict(config.metadata or {}), spec, dim)
        else:
            distance = {"cos": m.Distance.COSINE, "ip": m.Distance.DOT, "l2": m.Distance.EUCLID}
            self.client.create_collection(
                name,
                vectors_config=m.VectorParams(size=spec.dim, distance=distance[spec.metric]),
                metadata={
                    META_ENCODER: spec.encoder,
                    META_VERSION: spec.version,
                    META_SPACE: spec.name,
                },
            )
            logger.info("created upstream collection %s (%s)", name, spec.encoder)
        self.ensured[spec.name] = spec

    def upsert(self, space: str, points: list[Point]) -> None:
        m = self.models
        for start in range(0, len(points), BATCH):
            chunk = points[start : start + BATCH]
            batch = [
                m.PointStruct(id=p.key, vector=p.vector.astype(float).tolist(), payload=p.payload)
                for p in chunk
            ]
            self.client.upsert(self._name(space), points=batch, wait=True)

    def delete_keys(self, space: str, keys: list[int]) -> None:
        if keys:
            selector = self.models.PointIdsList(points=[int(k) for k in keys])
            self.client.delete(self._name(space), points_selector=selector, wait=True)

    def delete_doc(self, space: str, doc_id: str) -> None:
        m = self.models
        cond = m.FieldCondition(key="doc_id", match=m.MatchValue(value=doc_id))
        selector = m.FilterSelector(filter=m.Filter(must=[cond]))
        self.client.delete(self._name(space), points_selector=selector, wait=True)

    def _filter(self, filters: dict[str, Any] | None) -> Any:
        m = self.models
        must: list[Any] = []
        for key, values in normalize_filters(filters).items():
            if key == "ingested_after":
                must.append(m.FieldCondition(key="ingested_at", range=m.Range(gte=min(values))))
            elif key == "ingested_before":
                must.append(m.FieldCondition(key="ingested_at", range=m.Range(lte=max(values))))
            else:
                must.append(m.FieldCondition(key=key, match=m.MatchAny(any=values)))
        return m.Filter(must=must) if must else None

    def search(
        self, space: str, vector: np.ndarray, k: int, filters: dict[str, Any] | None = None
    ) -> list[UpstreamHit]:
        response = self.client.query_points(
            self._name(space),
            query=vector.astype(float).tolist(),
            limit=k,
            query_filter=self._filter(filters),
            with_payload=True,
        )
        return [UpstreamHit(int(p.id), float(p.score), p.payload or {}) for p in response.points]

    def count_doc(self, space: str, doc_id: str) -> int:
        m = self.models
        cond = m.FieldCondition(key="doc_id", match=m.MatchValue(value=doc_id))
        return int(self.client.count(self._name(space), count_filter=m.Filter(must=[cond])).count)

    def dump(self, space: str) -> dict[int, tuple[np.ndarray, dict[str, Any]]]:
        out: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
        offset = None
        while True:
            points, offset = self.client.scroll(
                self._name(space), limit=1000, offset=offset, with_vectors=True
            )
            for p in points:
                out[int(p.id)] = (np.asarray(p.vector, dtype=np.float32), p.payload or {})
            if offset is None:
                return out

    def close(self) -> None:
        self.client.close()


class _Locked:
    """Serialises calls into a local-mode client (a sink thread and searches share it)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.RLock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call
