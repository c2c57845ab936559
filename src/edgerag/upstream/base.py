"""The upstream contract: a remote vector database that receives the op log and answers queries.

One upstream collection per vector space (``<collection>_<space>``): each holds vectors of one
encoder, whose id and version are written in that collection's own metadata when the sink creates
it and checked every time the sink (re)connects — shipping MiniLM vectors into a collection built
by another encoder would silently poison every query, so it is refused instead.

Points are keyed by the item key (a stable 63-bit id derived from doc id + position, the same on
every node), so re-shipping an op is an idempotent upsert.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from edgerag.errors import ConfigError
from edgerag.types import SpaceSpec

KINDS = ("qdrant", "milvus")
META_ENCODER = "edgerag.encoder"
META_VERSION = "edgerag.encoder_version"
META_SPACE = "edgerag.space"
DEFAULT_KEY_ENV = "EDGERAG_UPSTREAM_API_KEY"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,180}$")


class UpstreamMismatchError(ConfigError):
    """The upstream collection was built by another encoder (or for another dimension)."""


@dataclass
class Point:
    """One item as shipped: its key, its vector in one space and its payload."""

    key: int
    vector: np.ndarray
    payload: dict[str, Any]


@dataclass
class UpstreamHit:
    key: int
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class UpstreamSpec:
    """Where an upstream lives. ``target``: a URL (server/cluster, TLS with https) or a local
    path for the embedded modes (Qdrant local mode, Milvus Lite). The API key is read from the
    environment variable ``api_key_env`` at connect time, never stored or logged."""

    kind: str
    target: str
    collection: str = "edgerag"
    api_key_env: str = DEFAULT_KEY_ENV

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown upstream {self.kind!r}; choose one of {list(KINDS)}")
        if not _NAME.match(self.collection):
            raise ConfigError(
                f"upstream collection {self.collection!r}: use letters, digits and _ "
                "(starting with a letter or _)"
            )
        if not self.target:
            raise ConfigError("upstream target is empty: give a URL or a local path")

    @property
    def is_url(self) -> bool:
        return urlsplit(self.target).scheme in ("http", "https", "grpc", "tcp")

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def redacted_target(self) -> str:
        """The target without any user:password part (safe to print and log)."""
        return redact(self.target)


def redact(target: str) -> str:
    parts = urlsplit(target)
    if not parts.scheme or "@" not in parts.netloc:
        return target
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, ""))


def space_collection(collection: str, space: str) -> str:
    return f"{collection}_{space}"


def check_encoder(name: str, meta: dict[str, Any], spec: SpaceSpec, dim: int | None) -> None:
    """Refuse an upstream collection whose recorded encoder or dimension differs from ours."""
    encoder, version = meta.get(META_ENCODER), meta.get(META_VERSION)
    if encoder is None:
        raise UpstreamMismatchError(
            f"upstream collection {name!r} exists but was not created by edgerag (no "
            f"{META_ENCODER} in its metadata): refusing to ship {spec.encoder} vectors into it"
        )
    if (encoder, version) != (spec.encoder, spec.version) or (dim and dim != spec.dim):
        raise UpstreamMismatchError(
            f"upstream collection {name!r} holds vectors of {encoder} {version} ({dim}-d); "
            f"this collection's space {spec.name!r} uses {spec.encoder} {spec.version} "
            f"({spec.dim}-d): refusing to mix encoders — use another --collection"
        )


class Upstream(ABC):
    """One upstream vector database holding one collection per space."""

    kind: str = ""

    def __init__(self, spec: UpstreamSpec, timeout_s: float = 10.0) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self.ensured: dict[str, SpaceSpec] = {}

    @abstractmethod
    def ensure_space(self, spec: SpaceSpec) -> None:
        """Create the space's collection (recording the encoder) or verify the recorded one."""

    @abstractmethod
    def upsert(self, space: str, points: list[Point]) -> None:
        """Insert or replace points by key; returns once the upstream acknowledged them."""

    @abstractmethod
    def delete_keys(self, space: str, keys: list[int]) -> None: ...

    @abstractmethod
    def delete_doc(self, space: str, doc_id: str) -> None:
        """Delete every point of a document (GDPR erasure reaches upstream)."""

    @abstractmethod
    def search(
        self, space: str, vector: np.ndarray, k: int, filters: dict[str, Any] | None = None
    ) -> list[UpstreamHit]: ...

    @abstractmethod
    def count_doc(self, space: str, doc_id: str) -> int:
        """Points of ``doc_id`` upstream (retention checks acknowledgement with it)."""

    @abstractmethod
    def dump(self, space: str) -> dict[int, tuple[np.ndarray, dict[str, Any]]]:
        """Every point of a space: key → (vector, payload). For tests and checks; small data."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release connections (and the embedded mode's file lock)."""


def open_upstream(spec: UpstreamSpec, timeout_s: float = 10.0) -> Upstream:
    """The backend for ``spec.kind`` (its client library is imported here, lazily)."""
    if spec.kind == "qdrant":
        from edgerag.upstream.qdrant import QdrantUpstream

        return QdrantUpstream(spec, timeout_s)
    from edgerag.upstream.milvus import MilvusUpstream

    return MilvusUpstream(spec, timeout_s)


# Filters the upstream can apply itself (the rest make the upstream part partial).
UPSTREAM_FILTERS = ("modality", "doc_id", "source", "page", "ingested_after", "ingested_before")


def unsupported_filters(filters: dict[str, Any] | None) -> list[str]:
    return sorted(k for k in (filters or {}) if k not in UPSTREAM_FILTERS)


def normalize_filters(filters: dict[str, Any] | None) -> dict[str, list[Any]]:
    """Filters as ``key → list of allowed values``; time bounds as unix seconds.

    Raises ConfigError for a filter the upstream cannot evaluate (the caller marks the upstream
    part partial): keys outside :data:`UPSTREAM_FILTERS`, and source globs.
    """
    from edgerag.retrieval.filters import _timestamp  # the edge's own parsing of time values

    out: dict[str, list[Any]] = {}
    for key, value in (filters or {}).items():
        values = list(value) if isinstance(value, list | tuple | set) else [value]
        if key not in UPSTREAM_FILTERS:
            raise ConfigError(f"filter {key!r} is not evaluated upstream")
        if key == "source" and any(c in str(v) for v in values for c in "*?["):
            raise ConfigError("source globs are not evaluated upstream")
        if key in ("ingested_after", "ingested_before"):
            values = [_timestamp(key, v) for v in values]
        if key == "page":
            values = [int(v) for v in values]
        out[key] = values
    return out
