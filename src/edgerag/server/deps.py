"""Typed FastAPI dependencies: the engine, the settings, and API-key checks by scope."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from edgerag.engine import Engine
from edgerag.errors import ConfigError, EdgeRagError
from edgerag.server.auth import ApiKey, AuthError, KeyStore
from edgerag.server.metrics import Metrics
from edgerag.server.originals import Originals
from edgerag.server.settings import ServerSettings

logger = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key")


def get_engine(request: Request) -> Engine:
    engine: Engine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        raise EdgeRagError("the collection is not open")
    return engine


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


def get_originals(request: Request) -> Originals:
    return request.app.state.originals  # type: ignore[no-any-return]


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
OriginalsDep = Annotated[Originals, Depends(get_originals)]


def require(scope: str) -> Callable[..., Any]:
    """A dependency that checks the request's API key against ``scope``.

    Reads need a key only when the settings say so (always for non-loopback binds); writes
    and admin calls always do.
    """

    def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header: Annotated[str | None, Security(_header)],
    ) -> ApiKey | None:
        settings: ServerSettings = request.app.state.settings
        keys: KeyStore = request.app.state.keys
        if "authorization" in request.headers and bearer is None:
            raise AuthError("the Authorization header must be `Bearer <API key>`")
        secret = header or (bearer.credentials if bearer else None)
        if header and bearer and bearer.credentials != header:
            raise AuthError("two different API keys given (Authorization and X-API-Key)")
        required = scope != "read" or settings.keys_for_reads
        if required and not secret and not keys:
            raise AuthError(
                f"this request needs an API key with scope {scope!r} and none exist: create one "
                f"with `edgerag keys create --db {settings.db} --scope {scope}`"
            )
        return keys.authorize(secret, scope, required)

    check.scope = scope  # type: ignore[attr-defined]  # read by the OpenAPI generator
    return check


ReadKey = Depends(require("read"))
WriteKey = Depends(require("write"))
AdminKey = Depends(require("admin"))


def engine_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the library, turning a stray builtin ValueError from bad input into a 400.

    The library raises ConfigError for what it checks; a plain ValueError/OverflowError that
    escapes it (a filter value SQLite can't bind, a lone surrogate in a query) is still the
    client's input, never a 500.
    """
    try:
        return fn(*args, **kwargs)
    except EdgeRagError:
        raise
    except (ValueError, OverflowError) as exc:
        logger.info("bad input reached %s: %s", getattr(fn, "__name__", fn), exc)
        raise ConfigError(f"invalid request: {exc}") from exc


async def run_query(request: Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking search/answer call on a worker thread, at most ``query_workers`` at once.

    The limiter queues callers first come, first served, so under overload requests wait their
    turn instead of all sharing two cores (which multiplies every request's latency).
    """
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "query_limiter", None)
    if limiter is None:  # made on first use: it belongs to the running event loop
        limiter = state.query_limiter = anyio.CapacityLimiter(state.settings.query_workers)
    return await anyio.to_thread.run_sync(
        functools.partial(engine_call, fn, *args, **kwargs), limiter=limiter
    )
