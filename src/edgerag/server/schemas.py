"""Request and response bodies of the HTTP API (pydantic), documented in /openapi.json."""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from edgerag.errors import InputError, InputTooLargeError
from edgerag.ingest.limits import human_bytes

logger = logging.getLogger(__name__)

Scalar = Union[str, int, float, bool]
FilterValue = Union[Scalar, list[Scalar]]
FILTERS_DOC = (
    "Metadata filters, AND across keys, a list means any of: modality, doc_id, source (glob), "
    "tags, page, ingested_after/before, time_from/to, or any metadata key."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueryFields(_Strict):
    """A query given as text, a photo, a voice clip, or several at once."""

    query: str | None = Field(None, max_length=8000, description="Question or search text.")
    text: str | None = Field(None, max_length=8000, description="Alias of `query`.")
    image_base64: str | None = Field(None, description="A photo (PNG/JPEG…), base64.")
    audio_base64: str | None = Field(None, description="A voice clip (WAV/MP3…), base64.")
    filters: dict[str, FilterValue] | None = Field(None, description=FILTERS_DOC)
    mode: Literal["hybrid", "dense", "bm25"] = Field(
        "hybrid", description="hybrid (dense + BM25 fused by RRF), dense, or bm25"
    )


class SearchRequest(QueryFields):
    k: int = Field(10, ge=1, le=100, description="Number of results.")
    fusion: Literal["early", "late"] | None = Field(
        None,
        description="Several query modalities: one fused vector (early, the default) "
        "or one search per modality merged by RRF (late).",
    )
    scope: Literal["local", "upstream", "all", "auto"] = Field(
        "local",
        description="local: the edge only; upstream: the upstream tier only; all: both merged "
        "(hits carry `tier`); auto: upstream too when local confidence is low. An unreachable "
        "upstream makes the response `partial` with `partial_reasons`, never an error.",
    )
    since: str | None = Field(
        None, description="Rolling window over ingest time: `10m`, `2h`, `7d`."
    )


class AskRequest(QueryFields):
    k: int = Field(5, ge=1, le=50, description="Sources retrieved for the answer.")
    stream: bool = Field(False, description="Stream Server-Sent Events (also: Accept header).")


class AnswerRequest(_Strict):
    """The industrial-IoT call: a photo of the machine and a question about it.

    Like every request body, unknown fields are rejected (422) rather than silently ignored;
    ``query`` and ``text`` are accepted as aliases of ``question`` (the other endpoints' name).
    """

    image_base64: str | None = Field(None, description="Photo, base64.")
    question: str | None = Field(None, max_length=8000, description="The question.")
    query: str | None = Field(None, max_length=8000, description="Alias of `question`.")
    text: str | None = Field(None, max_length=8000, description="Alias of `question`.")
    audio_base64: str | None = Field(None, description="Optional voice clip, base64.")
    k: int = Field(5, ge=1, le=50)


class UploadDocument(_Strict):
    name: str = Field(
        ...,
        min_length=1,
        max_length=255,
        description="File name (its suffix picks the extractor); only the base name is used.",
    )
    content_base64: str = Field(..., min_length=1, description="File content, base64.")
    metadata: dict[str, Any] | None = Field(None, description="Metadata of this document.")


class IngestJSON(_Strict):
    documents: list[UploadDocument] = Field(..., min_length=1, max_length=100)
    metadata: dict[str, Any] | None = Field(None, description="Metadata for every document.")


class IngestError(BaseModel):
    input: str
    reason: str


class IngestResult(BaseModel):
    added: list[str]
    unchanged: list[str]
    errors: list[IngestError]
    items: int
    lsn: int


class HitOut(BaseModel):
    id: str
    key: int
    doc_id: str
    source: str
    modality: str
    score: float
    text: str
    page: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    metadata: dict[str, Any] = {}
    scores: dict[str, float] = {}
    tier: Literal["edge", "upstream"] | None = Field(None, description="With a search `scope`.")


class SearchOut(BaseModel):
    hits: list[HitOut]
    timings_ms: dict[str, float]
    mode: str
    plan: str
    scope: str | None = None
    partial: bool = False
    partial_reasons: list[str] = []
    heard: str | None = None  # transcript of a spoken question


class CitationOut(BaseModel):
    n: int
    id: str
    doc_id: str
    source: str
    modality: str
    page: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    snippet: str


class AskOut(BaseModel):
    answer: str
    citations: list[CitationOut]
    sources: list[HitOut]
    timings_ms: dict[str, float]
    partial: bool
    generator: str
    heard: str | None = None  # transcript of a spoken question, shown as "heard: …"
    matched_by: str | None = None  # "photo": a wordless photo's visual match (check the source)


class AnswerOut(BaseModel):
    answer: str
    retrieved: list[HitOut]
    citations: list[CitationOut] = []
    timings_ms: dict[str, float] = {}
    partial: bool = False


class DocumentOut(BaseModel):
    doc_id: str
    source: str
    modality: str
    mime: str
    size: int
    title: str | None = None
    metadata: dict[str, Any] = {}
    created: float
    updated: float
    lsn: int
    items: int


class DeleteOut(BaseModel):
    deleted: str
    lsn: int
    # On a fleet node: shard, delete sequences, replicas that confirmed / are still pending.
    fleet: dict[str, Any] | None = None


class KeyCreate(_Strict):
    scope: str = Field(..., pattern="^(read|write|admin)$")
    name: str = Field("", max_length=100)


class KeyOut(BaseModel):
    id: str
    scope: str
    name: str
    created: float


class KeyCreated(KeyOut):
    key: str = Field(..., description="The secret: shown once, store it now.")


def decode_b64(field: str, value: str, max_bytes: int) -> bytes:
    """Decode a base64 field, naming it in the error; enforce the upload limit."""
    if len(value) > (max_bytes * 4) // 3 + 8:
        raise InputTooLargeError(field, f"over the {human_bytes(max_bytes)} upload limit")
    text = value.split(",", 1)[1] if value.startswith("data:") else value  # data: URLs too
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(field, f"not valid base64 ({exc})") from exc
    if not data:
        raise InputError(field, "empty")
    if len(data) > max_bytes:
        raise InputTooLargeError(field, f"over the {human_bytes(max_bytes)} upload limit")
    return data
