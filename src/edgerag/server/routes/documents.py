"""Ingest, list, get, delete documents; serve originals and thumbnails."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi import Query as QueryParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response

from edgerag.engine import Engine
from edgerag.errors import InputError, InputTooLargeError, NotFoundError
from edgerag.server.deps import (
    EngineDep,
    OriginalsDep,
    ReadKey,
    SettingsDep,
    WriteKey,
)
from edgerag.server.errors import COMMON_RESPONSES, envelope
from edgerag.server.originals import Originals, media_type
from edgerag.server.schemas import DeleteOut, DocumentOut, IngestJSON, IngestResult
from edgerag.server.settings import ServerSettings
from edgerag.server.uploads import Upload, check_doc_id, read_uploads, too_large
from edgerag.types import item_key

logger = logging.getLogger(__name__)

router = APIRouter(responses=COMMON_RESPONSES, tags=["documents"])

INGEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/IngestJSON"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "metadata": {
                            "type": "string",
                            "description": "JSON object: metadata for every file",
                        },
                    },
                    "required": ["files"],
                }
            },
        },
    }
}
EXTRA_SCHEMAS = [IngestJSON]  # referenced only from INGEST_BODY: app.py adds them to the spec


@router.post(
    "/ingest",
    openapi_extra=INGEST_BODY,
    responses={200: {"model": IngestResult}},
    dependencies=[WriteKey],
    summary="Ingest files (multipart `files`) or base64 documents (JSON)",
)
async def ingest(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    originals: OriginalsDep,
    scrub_pii: bool | None = QueryParam(
        None, description="Redact PII before indexing (default: the collection's setting)"
    ),
) -> JSONResponse:
    uploads, shared = await read_uploads(request, settings)
    if "doc_id" in shared and len(uploads) > 1:
        raise InputError("metadata.doc_id", "one doc_id cannot name several files")
    report = await run_in_threadpool(
        _ingest_all, engine, uploads, shared, settings, originals, scrub_pii
    )
    request.app.state.ops_metrics.count_ingest(report)
    if not report["added"] and not report["unchanged"]:
        status, kind = (413, "input_too_large") if report["too_large"] else (422, "invalid_input")
        message = "; ".join(f"{e['input']}: {e['reason']}" for e in report["errors"])
        return envelope(status, kind, message or "nothing to ingest")
    report.pop("too_large")
    return JSONResponse(report)


def _ingest_all(
    engine: Engine,
    uploads: list[Upload],
    shared: dict[str, Any],
    settings: ServerSettings,
    originals: Originals,
    scrub_pii: bool | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "added": [],
        "unchanged": [],
        "errors": [],
        "items": 0,
        "lsn": 0,
        "too_large": True,
    }
    for upload in uploads:
        meta = {**shared, **upload.metadata}
        error = too_large(upload, settings)
        try:
            if error is not None:
                raise error
            if "doc_id" in meta:
                meta["doc_id"] = check_doc_id(meta["doc_id"])
            report = engine.ingest([(upload.name, upload.data)], metadata=meta, scrub_pii=scrub_pii)
        except InputError as exc:
            out["errors"].append({"input": exc.source, "reason": exc.reason})
            out["too_large"] &= isinstance(exc, InputTooLargeError)
            continue
        out["errors"] += [{"input": s, "reason": r} for s, r in report.errors]
        out["too_large"] &= not report.errors
        out["added"] += report.added
        out["unchanged"] += report.unchanged
        out["items"] += report.items
        out["lsn"] = report.lsn
        scrubbed = engine.config.scrub_pii if scrub_pii is None else scrub_pii
        if scrubbed:  # an original would keep the PII: drop any kept from an earlier version
            for doc_id in report.added:
                originals.remove(doc_id)
        elif settings.keep_originals:
            kept = [d for d in report.unchanged if originals.get(d) is None]
            for doc_id in report.added + kept:
                originals.put(doc_id, upload.data)
    out["lsn"] = out["lsn"] or engine.store.last_lsn()
    return out


@router.get("/documents", responses={200: {"model": list[DocumentOut]}}, dependencies=[ReadKey])
def list_documents(
    engine: EngineDep,
    limit: int = QueryParam(100, ge=1, le=1000),
    offset: int = QueryParam(0, ge=0, le=2**62),
) -> JSONResponse:
    return JSONResponse(engine.documents(limit=limit, offset=offset))


@router.get(
    "/files/{doc_id:path}",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The original file"}
    },
    dependencies=[ReadKey],
    summary="The original file (open at a page with #page=N, at a time with #t=S)",
)
def document_file(
    doc_id: str, engine: EngineDep, settings: SettingsDep, originals: OriginalsDep
) -> FileResponse:
    doc = engine.document(doc_id)
    path = originals.get(doc_id) or _source_file(doc, settings)
    if path is None:
        raise NotFoundError(f"the original of {doc_id!r} was not kept (ingested elsewhere)")
    return FileResponse(
        path,
        media_type=media_type(doc.get("mime"), doc["source"]),
        filename=Path(doc["source"]).name,
        content_disposition_type="inline",
    )


def _source_file(doc: dict[str, Any], settings: ServerSettings) -> Path | None:
    """A document ingested by path on this machine (CLI): its id is the file's absolute path.

    HTTP clients cannot choose absolute ids (see ``check_doc_id``), so this never serves a path
    a client named.
    """
    if not settings.serve_source_files:
        return None
    path = Path(doc["doc_id"])
    if path.is_absolute() and path.name == Path(doc["source"]).name and path.is_file():
        return path
    return None


@router.get(
    "/documents/{doc_id:path}", responses={200: {"model": DocumentOut}}, dependencies=[ReadKey]
)
def get_document(doc_id: str, engine: EngineDep) -> JSONResponse:
    return JSONResponse(engine.document(doc_id))


@router.delete(
    "/documents/{doc_id:path}", responses={200: {"model": DeleteOut}}, dependencies=[WriteKey]
)
def delete_document(
    doc_id: str, request: Request, engine: EngineDep, originals: OriginalsDep
) -> JSONResponse:
    fleet_delete = getattr(request.app.state, "fleet_delete", None)
    if fleet_delete is not None:  # a fleet node: delete on every replica of the owner shard
        erasure = fleet_delete(doc_id)
        originals.remove(erasure["doc_id"])
        _forget_cached(engine)
        return JSONResponse(
            {"deleted": erasure["doc_id"], "lsn": engine.store.last_lsn(), "fleet": erasure}
        )
    lsn = engine.delete(doc_id)
    originals.remove(doc_id)
    _forget_cached(engine)
    return JSONResponse({"deleted": doc_id, "lsn": lsn})


def _forget_cached(engine: Engine) -> None:
    """Cached answers may quote the deleted text: drop them (the answer cache is optional)."""
    cache = getattr(engine, "cache", None)
    if cache is not None:
        # LSN-scoped, so stale entries could never be served; clearing also drops the text
        # from memory now instead of at the next lookup.
        cache.clear()


_IMAGE_MAGIC = [
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
]


@router.get(
    "/items/{item:path}/thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "The item's thumbnail"}
    },
    dependencies=[ReadKey],
    summary="Thumbnail of an item, by key or by item id (`<doc_id>#<position>`)",
)
def thumbnail(item: str, engine: EngineDep) -> Response:
    data = engine.store.thumbnail(item_key_of(item))
    if not data:
        raise NotFoundError(f"item {item} has no thumbnail")
    kind = next((m for magic, m in _IMAGE_MAGIC if data.startswith(magic)), "image/jpeg")
    return Response(data, media_type=kind, headers={"Cache-Control": "private, max-age=300"})


def item_key_of(item: str) -> int:
    """An item's key from its decimal key or its id. Ids exist because JSON numbers lose
    precision past 2**53 in browsers, and keys are 63-bit."""
    if item.isdigit():
        key = int(item)
        if key < 2**63:
            return key
    doc_id, sep, position = item.rpartition("#")
    if sep and doc_id and position.isdigit() and len(position) < 10:
        return item_key(doc_id, int(position))
    raise NotFoundError(f"item {item[:80]!r} not found (give a key or <doc_id>#<position>)")
