"""Library errors → HTTP: one handler, one JSON envelope ``{"error": {"type", "message"}}``.

Bad input is always a 4xx: request validation 422, a bad option 400, an unusable file 422, too
large 413, unknown id 404. Only our own failures (model, index, upstream) are 5xx.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from edgerag.errors import (
    ConfigError,
    EdgeRagError,
    EncoderError,
    FleetError,
    GenerationError,
    IndexCorruptError,
    InputError,
    InputTooLargeError,
    MissingExtraError,
    NotFoundError,
    UpstreamError,
)
from edgerag.server.auth import AuthError, ScopeError

logger = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorEnvelope(BaseModel):
    """What every non-2xx response carries."""

    error: ErrorBody


class Unsupported(EdgeRagError):
    """The engine build lacks a feature this route needs (HTTP 501)."""


# Most specific first: the first matching class decides.
STATUS: list[tuple[type[Exception], int, str]] = [
    (AuthError, 401, "unauthorized"),
    (ScopeError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (InputTooLargeError, 413, "input_too_large"),
    (InputError, 422, "invalid_input"),
    (ConfigError, 400, "invalid_request"),
    (MissingExtraError, 501, "missing_extra"),
    (Unsupported, 501, "unsupported"),
    (UpstreamError, 502, "upstream_error"),
    (GenerationError, 500, "generation_error"),
    (EncoderError, 500, "encoder_error"),
    (IndexCorruptError, 500, "index_error"),
    (FleetError, 503, "fleet_unavailable"),
    (EdgeRagError, 500, "internal_error"),
]
HTTP_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    503: "unavailable",
}
# Documented on every route so the OpenAPI spec matches what the server really answers.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope, "description": desc}
    for code, desc in [
        (400, "Invalid option or query"),
        (401, "Missing or invalid API key"),
        (403, "API key scope too low"),
        (404, "Not found"),
        (413, "Request or file too large"),
        (415, "Unsupported content type"),
        (422, "Invalid request body or input file"),
    ]
}


def envelope(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": kind, "message": message}}, status_code=status, headers=headers
    )


def classify(exc: Exception) -> tuple[int, str]:
    for cls, status, kind in STATUS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "internal_error"


def error_event(exc: Exception) -> dict[str, Any]:
    """The SSE form of an error raised after the stream started."""
    status, kind = classify(exc)
    message = str(exc) if status < 500 or isinstance(exc, EdgeRagError) else "internal error"
    return {"type": "error", "status": status, "error": {"type": kind, "message": message}}


async def _edgerag_error(request: Request, exc: Exception) -> JSONResponse:
    status, kind = classify(exc)
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return envelope(status, kind, str(exc), headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return envelope(422, "validation_error", "; ".join(parts) or "invalid request")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = HTTP_TYPES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return envelope(exc.status_code, kind, str(exc.detail), headers or None)


def _allowed_methods(request: Request) -> list[str]:
    """Every method any route serves at this path (Starlette reports only the first route's,
    and GET and DELETE /documents/{id} are two routes)."""
    matching = [
        route
        for route in _flat_routes(request.app.router.routes)
        if route.matches(request.scope)[0] != Match.NONE
    ]

    # Doc ids may hold slashes ({doc_id:path}), so /documents/{id} also matches the path of
    # /documents/{id}/pages/{n}.png: the resource at this URL is the most specific template
    # (the most literal characters), and only its routes' methods are advertised.
    def literal(route: Any) -> int:
        return len(re.sub(r"\{[^}]*\}", "", getattr(route, "path", "")))

    best = max((literal(r) for r in matching), default=0)
    methods: set[str] = set()
    for route in matching:
        if literal(route) == best:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _flat_routes(routes: Any) -> list[Any]:
    out = []
    for route in routes:
        # Included routers (newer FastAPI wraps them) and mounts hold routes of their own.
        nested = getattr(route, "original_router", route)
        inner = getattr(nested, "routes", None)
        if inner is not None and not hasattr(route, "methods"):
            out += _flat_routes(inner)
        else:
            out.append(route)
    return out


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return envelope(500, "internal_error", "internal error (see the server log)")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(EdgeRagError, _edgerag_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
