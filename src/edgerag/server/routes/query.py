"""Search, ask (JSON or Server-Sent Events) and the industrial-IoT ``/answer`` call."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from edgerag.engine import Engine
from edgerag.errors import ConfigError
from edgerag.server.deps import EngineDep, MetricsDep, ReadKey, SettingsDep, run_query
from edgerag.server.errors import COMMON_RESPONSES, Unsupported, error_event
from edgerag.server.metrics import Metrics
from edgerag.server.schemas import (
    AnswerOut,
    AnswerRequest,
    AskOut,
    AskRequest,
    QueryFields,
    SearchOut,
    SearchRequest,
    decode_b64,
)
from edgerag.server.settings import ServerSettings
from edgerag.types import Query

logger = logging.getLogger(__name__)

router = APIRouter(responses=COMMON_RESPONSES, tags=["query"], dependencies=[ReadKey])

SSE_DOC = (
    'With `"stream": true` or `Accept: text/event-stream`: Server-Sent Events `sources` '
    "(first), `token` (zero or more), `done` (last), or `error`; each `data:` is one JSON "
    "object whose `type` repeats the event name."
)


def build_query(
    text: str | None,
    image: str | None,
    audio: str | None,
    settings: ServerSettings,
    text_field: str = "query",
) -> str | Query:
    """The engine's query: a plain string for text, a :class:`Query` when media is attached.

    ``text_field`` is the body field the text came from, named in the error for an empty query.
    """
    limit = settings.max_upload_bytes
    image_bytes = decode_b64("image_base64", image, limit) if image else None
    audio_bytes = decode_b64("audio_base64", audio, limit) if audio else None
    if image_bytes is None and audio_bytes is None:
        if not (text or "").strip():
            raise ConfigError(
                f"empty query: give `{text_field}` text, `image_base64` or `audio_base64`"
            )
        return text or ""
    return Query(text=text or None, image=image_bytes, audio=audio_bytes)


def _query_of(body: QueryFields, settings: ServerSettings) -> str | Query:
    return build_query(body.query or body.text, body.image_base64, body.audio_base64, settings)


@router.post("/search", responses={200: {"model": SearchOut}})
async def search(
    body: SearchRequest,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> JSONResponse:
    query = await run_query(request, _query_of, body, settings)  # base64 off the event loop
    extra = {"fusion": body.fusion} if body.fusion else {}
    response = await run_query(
        request, engine.search, query, k=body.k, filters=body.filters, mode=body.mode, **extra
    )
    metrics.observe_stages("search", response.timings_ms)
    return JSONResponse(response.to_dict())


def _asker(engine: Engine) -> Engine:
    if not hasattr(engine, "ask"):
        raise Unsupported("answers are not available: this engine has no ask()")
    return engine


@router.post(
    "/ask",
    responses={
        200: {
            "model": AskOut,
            "content": {"text/event-stream": {}},
            "description": f"The cited answer. {SSE_DOC}",
        }
    },
)
async def ask(
    body: AskRequest,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> Any:
    asker = _asker(engine)
    query = await run_query(request, _query_of, body, settings)
    args = {"k": body.k, "filters": body.filters, "mode": body.mode}
    if body.stream or "text/event-stream" in request.headers.get("accept", ""):
        events = await run_query(request, asker.ask_stream, query, **args)
        # The first event is computed before the response starts, so bad input still gets
        # a 4xx status instead of an error event inside a 200 stream.
        first = await run_query(request, next, events, None)
        return StreamingResponse(
            _sse(first, events, metrics),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    answer = await run_query(request, asker.ask, query, **args)
    out = answer.to_dict()
    metrics.observe_stages("ask", out.get("timings_ms", {}))
    return JSONResponse(out)


def sse_event(event: dict[str, Any]) -> bytes:
    return f"event: {event.get('type', 'message')}\ndata: {json.dumps(event)}\n\n".encode()


def _sse(
    first: dict[str, Any] | None, events: Iterator[dict[str, Any]], metrics: Metrics
) -> Iterator[bytes]:
    """Starlette iterates this in a worker thread: each ``next`` may block on the generator."""
    try:
        if first is not None:
            yield sse_event(first)
        for event in events:
            if event.get("type") == "done":
                metrics.observe_stages("ask", event.get("timings_ms", {}))
            yield sse_event(event)
    except Exception as exc:  # the status is already sent: report in-band, then end
        logger.warning("answer stream failed: %s", exc, exc_info=True)
        yield sse_event(error_event(exc))
    finally:
        close = getattr(events, "close", None)
        if callable(close):
            close()


@router.post(
    "/answer",
    responses={200: {"model": AnswerOut}},
    summary="A photo (and/or a question) in, a cited answer and its sources out",
)
async def answer(
    body: AnswerRequest,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> JSONResponse:
    asker = _asker(engine)
    text = body.question or body.query or body.text
    query = await run_query(
        request, build_query, text, body.image_base64, body.audio_base64, settings, "question"
    )
    result = (await run_query(request, asker.ask, query, k=body.k)).to_dict()
    metrics.observe_stages("ask", result.get("timings_ms", {}))
    return JSONResponse(
        {
            "answer": result["answer"],
            "retrieved": result["sources"],
            "citations": result["citations"],
            "timings_ms": result["timings_ms"],
            "partial": result["partial"],
        }
    )
