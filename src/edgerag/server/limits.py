"""Request body limit: refuse early on Content-Length, count bytes for chunked bodies."""

from __future__ import annotations

import json
import logging

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgerag.ingest.limits import human_bytes

logger = logging.getLogger(__name__)


class BodyLimitMiddleware:
    """413 for any request body over ``max_bytes``.

    A declared Content-Length over the limit is answered before the body is read. Otherwise the
    bytes are counted as the route reads them and an ``HTTPException(413)`` is raised from
    ``receive``, which the route's exception handling turns into the JSON envelope.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _reject(send, self._message(declared))
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._message(seen, at_least=True))
            return message

        await self.app(scope, counting_receive, send)

    def _message(self, size: int, at_least: bool = False) -> str:
        more = "over " if at_least else ""
        return (
            f"request body of {more}{human_bytes(size)} is over the "
            f"{human_bytes(self.max_bytes)} limit (max_request_bytes)"
        )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reject(send: Send, message: str) -> None:
    body = json.dumps({"error": {"type": "payload_too_large", "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
