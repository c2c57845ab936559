"""Turning request bodies into ``(safe_name, bytes)`` inputs: clients never name a path."""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from edgerag.errors import InputError, InputTooLargeError
from edgerag.ingest.limits import human_bytes
from edgerag.server.schemas import IngestJSON, decode_b64
from edgerag.server.settings import ServerSettings

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^\w.\- ]+")
# Ids a client may choose: no leading "/" (absolute ids belong to files ingested by path on
# this machine), no ".." segment, no control characters.
_DOC_ID = re.compile(r"^[\w.:@+=,\- ][\w.:@+=,/\- ]{0,254}$")


@dataclass
class Upload:
    name: str  # the safe name: what the engine sees as source and default doc id
    data: bytes
    metadata: dict[str, Any] = field(default_factory=dict)


def safe_name(name: str) -> str:
    """Base name only, no separators, no leading dots, printable: ``../../etc/x.md`` → ``x.md``."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = "".join(c for c in unicodedata.normalize("NFC", base) if c.isprintable())
    base = _UNSAFE.sub("_", base).strip(" .")
    if len(base) > 200:
        stem, dot, suffix = base.rpartition(".")
        base = (stem[:190] + dot + suffix[:9]) if dot else base[:200]
    return base or "upload"


def check_doc_id(value: Any) -> str:
    doc_id = str(value)
    if not _DOC_ID.match(doc_id) or ".." in doc_id.split("/"):
        raise InputError(
            "metadata.doc_id",
            f"{doc_id[:80]!r} is not a valid document id (letters, digits, ._:@+=,-/ and spaces; "
            "no leading '/', no '..'; at most 255 characters)",
        )
    return doc_id


async def read_uploads(request: Request, settings: ServerSettings) -> tuple[list[Upload], dict]:
    """Parse a multipart or JSON ingest body into uploads plus shared metadata."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return await _multipart(request, settings)
    if ctype == "application/json":
        return _json(await request.body(), settings)
    raise HTTPException(
        415,
        f"content type {ctype or '(none)'!r}: send multipart/form-data with `files` "
        "fields, or application/json with base64 `documents`",
    )


async def _multipart(request: Request, settings: ServerSettings) -> tuple[list[Upload], dict]:
    form = await request.form(max_files=settings.max_upload_files, max_fields=50)
    meta = _metadata_field(form.get("metadata"))
    files = [f for f in form.getlist("files") + form.getlist("file") if isinstance(f, UploadFile)]
    if not files:
        raise InputError("files", "no file in the form (use the field name `files`)")
    uploads = []
    for upload in files:
        data = await upload.read(settings.max_upload_bytes + 1)
        await upload.close()
        uploads.append(Upload(safe_name(upload.filename or "upload"), data))
    return uploads, meta


def _metadata_field(raw: Any) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        raise InputError("metadata", "must be a JSON object in a text field")
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise InputError("metadata", f"not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise InputError("metadata", "must be a JSON object")
    return meta


def _json(body: bytes, settings: ServerSettings) -> tuple[list[Upload], dict]:
    try:
        parsed = IngestJSON.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    uploads = []
    for i, doc in enumerate(parsed.documents):
        data = decode_b64(
            f"documents[{i}].content_base64", doc.content_base64, settings.max_upload_bytes
        )
        uploads.append(Upload(safe_name(doc.name), data, dict(doc.metadata or {})))
    return uploads, dict(parsed.metadata or {})


def too_large(upload: Upload, settings: ServerSettings) -> InputTooLargeError | None:
    if len(upload.data) > settings.max_upload_bytes:
        return InputTooLargeError(
            upload.name,
            f"over the {human_bytes(settings.max_upload_bytes)} upload limit (max_upload_bytes)",
        )
    return None
