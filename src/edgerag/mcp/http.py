"""MCP over streamable HTTP, behind the collection's API keys (the same keys as the HTTP API).

Every request carries a key (``Authorization: Bearer <key>`` or ``X-API-Key``); a read key may
search, ask and read documents, ``ingest`` needs a write key. The server is stateless (one MCP
exchange per request), so the key's scope travels with the request that calls the tool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgerag.errors import ConfigError
from edgerag.mcp.server import REQUEST_SCOPE, build_server
from edgerag.server.auth import AuthError, KeyStore

PATH = "/mcp"


def _secret(scope: dict[str, Any]) -> str | None:
    headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
    if "x-api-key" in headers:
        return headers["x-api-key"]
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


class KeyGate:
    """ASGI middleware: 401 without a valid key; the key's scope set for the tools."""

    def __init__(self, app: Any, keys: KeyStore) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            record = self.keys.authorize(_secret(scope), "read", required=True)
        except AuthError as exc:
            body = json.dumps({"error": "unauthorized", "detail": str(exc)}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b"Bearer"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        token = REQUEST_SCOPE.set(record.scope if record else "read")
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_SCOPE.reset(token)


def build_http_app(engine: Any, db: Path) -> Any:
    """The streamable-HTTP MCP app at ``/mcp``, refusing every request without a valid key."""
    keys = KeyStore(db)
    if not keys:
        raise ConfigError(
            f"{db}: no API keys; MCP over HTTP needs one (`edgerag keys create --db {db} "
            "--scope read`)"
        )
    server = build_server(engine, offer_ingest=True)
    app = server.streamable_http_app(
        streamable_http_path=PATH, stateless_http=True, json_response=True
    )
    return KeyGate(app, keys)
