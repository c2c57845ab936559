"""Milvus upstream through ``pymilvus``: a cluster URI, or Milvus Lite for a local ``*.db`` path.

Milvus Lite speaks the same ``MilvusClient`` API as a cluster, which is what the tests run
against. The token (``user:password`` or an API key) comes from the environment.
"""

from __future__ import annotations

import json
import logging
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
METRICS = {"cos": "COSINE", "ip": "IP", "l2": "L2"}
# Payload fields with a fixed schema (filtered on); everything else lands in the dynamic field.
DOC_ID_MAX = 4096


class MilvusUpstream(Upstream):
    kind = "milvus"

    def __init__(self, spec: UpstreamSpec, timeout_s: float = 10.0) -> None:
        super().__init__(spec, timeout_s)
        self.pm = require("pymilvus")
        uri = spec.target
        if not spec.is_url and not uri.endswith(".db"):
            uri = f"{uri.rstrip('/')}/milvus.db"  # Milvus Lite wants a *.db file
        token = spec.api_key() or ""
        self.client = self.pm.MilvusClient(uri=uri, token=token, timeout=timeout_s)

    def _name(self, space: str) -> str:
        return space_collection(self.spec.collection, space)

    def ensure_space(self, spec: SpaceSpec) -> None:
        if spec.name in self.ensured:
            return
        name = self._name(spec.name)
        if self.client.has_collection(name):
            info = self.client.describe_collection(name)
            dims = [f["params"].get("dim") for f in info["fields"] if f["name"] == "vector"]
            dim = int(dims[0]) if dims and dims[0] is not None else None
            check_encoder(name, dict(info.get("properties") or {}), spec, dim)
            self.client.load_collection(name)
        else:
            dt = self.pm.DataType
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=True)
            schema.add_field("id", dt.INT64, is_primary=True)
            schema.add_field("vector", dt.FLOAT_VECTOR, dim=spec.dim)
            schema.add_field("doc_id", dt.VARCHAR, max_length=DOC_ID_MAX)
            index = self.client.prepare_index_params()
            index.add_index("vector", index_type="AUTOINDEX", metric_type=METRICS[spec.metric])
            self.client.create_collection(
                name,
                schema=schema,
                index_params=index,
                consistency_level="Strong",  # a search right after a sync sees it
                properties={
                    META_ENCODER: spec.encoder,
                    META_VERSION: spec.version,
                    META_SPACE: spec.name,
                },
            )
            logger.info("created upstream collection %s (%s)", name, spec.encoder)
        self.ensured[spec.name] = spec

    def upsert(self, space: str, points: list[Point]) -> None:
        for start in range(0, len(points), BATCH):
            rows = [
                {
                    # None is not a JSON-field value Milvus accepts in every version: drop it.
                    **{k: v for k, v in p.payload.items() if v is not None},
                    "id": int(p.key),
                    "vector": p.vector.astype(np.float32).tolist(),
                }
                for p in points[start : start + BATCH]
            ]
            self.client.upsert(self._name(space), rows)

    def delete_keys(self, space: str, keys: list[int]) -> None:
        if keys:
            self.client.delete(self._name(space), ids=[int(k) for k in keys])

    def delete_doc(self, space: str, doc_id: str) -> None:
        self.client.delete(self._name(space), filter=f"doc_id == {literal(doc_id)}")

    def _expr(self, filters: dict[str, Any] | None) -> str:
        parts = []
        for key, values in normalize_filters(filters).items():
            if key == "ingested_after":
                parts.append(f"ingested_at >= {literal(min(values))}")
            elif key == "ingested_before":
                parts.append(f"ingested_at <= {literal(max(values))}")
            else:
                parts.append(f"{key} in [{', '.join(literal(v) for v in values)}]")
        return " and ".join(parts)

    def search(
        self, space: str, vector: np.ndarray, k: int, filters: dict[str, Any] | None = None
    ) -> list[UpstreamHit]:
        result = self.client.search(
            self._name(space),
            data=[vector.astype(np.float32).tolist()],
            limit=k,
            anns_field="vector",
            filter=self._expr(filters),
            output_fields=["*"],
        )
        hits = []
        for row in result[0]:
            entity = dict(row.get("entity") or {})
            entity.pop("vector", None)
            hits.append(UpstreamHit(int(row["id"]), float(row["distance"]), entity))
        return hits

    def count_doc(self, space: str, doc_id: str) -> int:
        rows = self.client.query(
            self._name(space),
            filter=f"doc_id == {literal(doc_id)}",
            output_fields=["count(*)"],
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def dump(self, space: str) -> dict[int, tuple[np.ndarray, dict[str, Any]]]:
        out: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
        iterator = self.client.query_iterator(
            self._name(space), batch_size=1000, filter="id >= 0", output_fields=["*"]
        )
        while True:
            rows = iterator.next()
            if not rows:
                iterator.close()
                return out
            for row in rows:
                row = dict(row)
                key, vector = int(row.pop("id")), row.pop("vector")
                out[key] = (np.asarray(vector, dtype=np.float32), row)

    def close(self) -> None:
        self.client.close()


def literal(value: Any) -> str:
    """A value as a Milvus expression literal. Strings are JSON-quoted (backslash escapes are
    what Milvus's parser reads); Milvus Lite has no ``filter_params`` templating."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return json.dumps(str(value), ensure_ascii=False)
    return repr(value)
