"""The FastAPI application factory: ``create_app(settings)``; the lifespan owns the Engine."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from edgerag import __version__
from edgerag.engine import Engine
from edgerag.errors import ConfigError
from edgerag.server import errors, ops_metrics
from edgerag.server.auth import KeyStore
from edgerag.server.docs import install_docs
from edgerag.server.limits import BodyLimitMiddleware
from edgerag.server.metrics import Metrics, MetricsMiddleware
from edgerag.server.originals import Originals
from edgerag.server.routes import documents, entities, preview, query, system
from edgerag.server.routes.system import STATIC
from edgerag.server.settings import ServerSettings

logger = logging.getLogger(__name__)

# preview first: its /documents/{id}/pages/{n}.png would match documents' {doc_id:path}
ROUTERS = (system.router, preview.router, documents.router, query.router, entities.router)


def create_app(settings: ServerSettings, engine: Engine | None = None) -> FastAPI:
    """Build the app for the collection ``settings.db``.

    Args:
        settings: server settings (see :class:`ServerSettings`).
        engine: an already open engine to serve (tests); by default the lifespan opens the
            collection on startup and closes it on shutdown.

    Raises:
        ConfigError: bound beyond loopback while no API key exists (everything would be open),
            or read keys required while none exists (everything would be refused).
    """
    keys = KeyStore(settings.db)
    if not settings.loopback and not keys:
        raise ConfigError(
            f"refusing to serve on {settings.host} without API keys: create one with "
            f"`edgerag keys create --db {settings.db} --scope admin`"
        )
    if settings.require_read_keys and not keys:
        raise ConfigError(
            "refusing to start: --require-read-keys is set but no API key exists, so every "
            f"request would be refused (401); create one with `edgerag keys create --db "
            f"{settings.db} --scope read`"
        )
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if engine is not None:  # the caller owns it: nothing to open or close
            upstream = await run_in_threadpool(_attach_upstream, app, engine)
            try:
                yield
            finally:
                await run_in_threadpool(upstream.close)
            return
        opened = await run_in_threadpool(Engine.open, settings.db)
        _configure(opened, settings)
        app.state.engine = opened
        metrics.watch_engine(opened.stats)
        upstream = await run_in_threadpool(_attach_upstream, app, opened)
        # BM25's in-memory index is built beside the first requests, not by the first question
        opened.lexical.prepare(background=True)
        logger.info("serving %s (LSN %d)", settings.db, opened.store.last_lsn())
        try:
            yield
        finally:
            app.state.engine = None
            await run_in_threadpool(upstream.close)
            await run_in_threadpool(opened.close)

    app = FastAPI(
        title="edgerag",
        version=__version__,
        summary="Edge-first multimodal RAG: ingest, search, cited answers.",
        lifespan=lifespan,
        docs_url=None,  # served from local files by install_docs: the default needs a CDN
        redoc_url=None,
    )
    install_docs(app)
    app.state.settings = settings
    app.state.keys = keys
    app.state.metrics = metrics
    app.state.originals = Originals(settings.db)
    app.state.engine = engine
    app.state.upstream = None  # an UpstreamService once the lifespan attached it
    if engine is not None:
        _configure(engine, settings)
        metrics.watch_engine(engine.stats)
    # The fleet sets this to a (sync or async) callable returning its status view.
    app.state.fleet_status: Callable[[], Any] | None = None
    ops_metrics.install(app, metrics)
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _attach_upstream(app: FastAPI, engine: Engine) -> Any:
    """Run the collection's upstream sinks; searches with a scope use the same backends."""
    from edgerag.upstream.service import UpstreamCollector, UpstreamService

    service = UpstreamService(engine)
    app.state.upstream = service
    # The lifespan may run more than once per app (test clients): one collector per registry,
    # pointed at the newest service.
    collector = getattr(app.state, "upstream_collector", None)
    if collector is None:
        collector = app.state.upstream_collector = UpstreamCollector(service)
        app.state.metrics.registry.register(collector)
    collector.service = service
    return service


def _configure(engine: Engine, settings: ServerSettings) -> None:
    cache = getattr(engine, "cache", None)
    if cache is not None and not settings.result_cache:
        cache.enabled = False  # measure or serve the uncached path


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated spec plus the schemas only referenced from hand-written request bodies."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    _document_scopes(app, spec)
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in documents.EXTRA_SCHEMAS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    app.openapi_schema = spec
    return spec


def _document_scopes(app: FastAPI, spec: dict[str, Any]) -> None:
    """Say which scope each operation needs; reads that need no key get optional security."""
    settings: ServerSettings = app.state.settings
    # Our routers' own route lists: app.routes may hold wrappers, depending on the version.
    routes = [r for router in ROUTERS for r in router.routes]
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        scope = _scope_of(route.dependant)
        if scope is None:
            continue
        for method in route.methods:
            operation = spec["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            operation["x-required-scope"] = scope
            if scope == "read" and not settings.keys_for_reads:
                operation.setdefault("security", []).append({})  # {} = no key is fine too


def _scope_of(dependant: Dependant) -> str | None:
    for dep in dependant.dependencies:
        scope = getattr(dep.call, "scope", None) or _scope_of(dep)
        if scope:
            return str(scope)
    return None
