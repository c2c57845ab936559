"""Ops: the unit of mutation, of crash recovery and of replication.

Every change to a collection is an :class:`Op` applied in one SQLite transaction together with
its op-log row, which gets the next LSN. The log row itself is small (kind, doc id, keys
touched); a full op with rows and vectors can be rebuilt from the store at any time
(:meth:`edgerag.store.sqlite.Store.materialize`) and is what the fleet ships.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

UPSERT = "upsert"
DELETE = "delete"
OP_KINDS = (UPSERT, DELETE)


@dataclass
class DocumentRecord:
    doc_id: str
    source: str
    modality: str
    mime: str
    content_hash: str
    size: int
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # PII redacted at ingest, by kind ({"EMAIL": 2}); counts only, never the values.
    redactions: dict[str, int] = field(default_factory=dict)


@dataclass
class ItemRecord:
    key: int
    item_id: str
    position: int
    modality: str
    text: str
    page: int | None = None
    char_start: int | None = None
    char_end: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    thumbnail: bytes | None = None


@dataclass
class SpaceVectors:
    """Vectors of one space for a subset of an op's items (not every item has every space)."""

    encoder: str
    version: str
    keys: np.ndarray  # int64 (n,)
    vectors: np.ndarray  # float32 (n, dim)


@dataclass
class UnitVectors:
    """Vectors of the answer units (sentences, rows) of an op's items, int8 with a scale each.

    Row ``i`` is unit ``positions[i]`` of item ``keys[i]``; ``checks[i]`` is a checksum of that
    unit's text, so a reader never pairs a vector with another unit (units.py may change how
    it splits); the vector is ``codes[i] * scales[i]``.
    """

    encoder: str
    version: str
    keys: np.ndarray  # int64 (n,)
    positions: np.ndarray  # int32 (n,)
    checks: np.ndarray  # uint32 (n,)
    scales: np.ndarray  # float32 (n,)
    codes: np.ndarray  # int8 (n, dim)

    def __len__(self) -> int:
        return len(self.keys)


_UNIT_BLOCKS = (("keys", "<i8"), ("positions", "<i4"), ("checks", "<u4"), ("scales", "<f4"))


@dataclass
class Op:
    kind: str
    doc_id: str
    document: DocumentRecord | None = None
    items: list[ItemRecord] = field(default_factory=list)
    vectors: dict[str, SpaceVectors] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    lsn: int = 0  # assigned by the store that applies it
    origin: str = ""  # node that first wrote it (fleet)
    origin_lsn: int = 0
    units: UnitVectors | None = None  # answer-unit vectors (late chunking), when computed

    def to_bytes(self) -> bytes:
        """Compact wire form: 4-byte header length, JSON header, raw vector blocks."""
        blocks: list[bytes] = []
        spaces = {}
        for name, sv in self.vectors.items():
            keys = np.ascontiguousarray(sv.keys, dtype="<i8").tobytes()
            vecs = np.ascontiguousarray(sv.vectors, dtype="<f4")
            spaces[name] = {
                "encoder": sv.encoder,
                "version": sv.version,
                "n": int(vecs.shape[0]),
                "dim": int(vecs.shape[1]) if vecs.ndim == 2 else 0,
            }
            blocks += [keys, vecs.tobytes()]
        units = None
        if self.units is not None and len(self.units):
            u = self.units
            units = {"encoder": u.encoder, "version": u.version, "n": len(u)}
            units["dim"] = int(u.codes.shape[1])
            blocks += [
                np.ascontiguousarray(getattr(u, f), dtype=t).tobytes() for f, t in _UNIT_BLOCKS
            ]
            blocks.append(np.ascontiguousarray(u.codes, dtype=np.int8).tobytes())
        header = {
            "kind": self.kind,
            "doc_id": self.doc_id,
            "document": asdict(self.document) if self.document else None,
            "items": [_item_json(i) for i in self.items],
            "spaces": spaces,
            "units": units,
            "ts": self.ts,
            "lsn": self.lsn,
            "origin": self.origin,
            "origin_lsn": self.origin_lsn,
        }
        raw = json.dumps(header, separators=(",", ":")).encode()
        return struct.pack("<I", len(raw)) + raw + b"".join(blocks)

    @classmethod
    def from_bytes(cls, data: bytes) -> Op:
        (length,) = struct.unpack_from("<I", data)
        header = json.loads(data[4 : 4 + length])
        offset = 4 + length
        vectors = {}
        for name, meta in header["spaces"].items():
            n, dim = meta["n"], meta["dim"]
            keys = np.frombuffer(data, dtype="<i8", count=n, offset=offset).astype(np.int64)
            offset += 8 * n
            vecs = np.frombuffer(data, dtype="<f4", count=n * dim, offset=offset)
            offset += 4 * n * dim
            vectors[name] = SpaceVectors(
                meta["encoder"], meta["version"], keys, vecs.reshape(n, dim).astype(np.float32)
            )
        units = None
        if header.get("units"):  # ops from nodes before unit vectors carry none
            units, offset = _units_from(data, header["units"], offset)
        doc = header["document"]
        return cls(
            kind=header["kind"],
            doc_id=header["doc_id"],
            document=DocumentRecord(**doc) if doc else None,
            items=[_item_from_json(i) for i in header["items"]],
            vectors=vectors,
            ts=header["ts"],
            lsn=header["lsn"],
            origin=header["origin"],
            origin_lsn=header["origin_lsn"],
            units=units,
        )


def _units_from(data: bytes, meta: dict[str, Any], offset: int) -> tuple[UnitVectors, int]:
    n, dim = meta["n"], meta["dim"]
    arrays = {}
    for name, dtype in _UNIT_BLOCKS:
        arrays[name] = np.frombuffer(data, dtype=dtype, count=n, offset=offset).copy()
        offset += arrays[name].nbytes
    codes = np.frombuffer(data, dtype=np.int8, count=n * dim, offset=offset).reshape(n, dim)
    offset += n * dim
    return UnitVectors(meta["encoder"], meta["version"], codes=codes.copy(), **arrays), offset


def _item_json(item: ItemRecord) -> dict[str, Any]:
    data = asdict(item)
    data["thumbnail"] = item.thumbnail.hex() if item.thumbnail else None
    return data


def _item_from_json(data: dict[str, Any]) -> ItemRecord:
    thumb = data.pop("thumbnail", None)
    return ItemRecord(**data, thumbnail=bytes.fromhex(thumb) if thumb else None)
