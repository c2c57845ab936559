"""Collection stats, health, readiness, Prometheus metrics, fleet status, key admin, the page."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response

from edgerag.errors import NotFoundError
from edgerag.server.auth import KeyStore
from edgerag.server.deps import AdminKey, EngineDep, MetricsDep, ReadKey
from edgerag.server.errors import COMMON_RESPONSES, ErrorEnvelope, envelope
from edgerag.server.schemas import KeyCreate, KeyCreated, KeyOut

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(responses=COMMON_RESPONSES)


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/healthz", tags=["system"], summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["system"],
    responses={503: {"model": ErrorEnvelope, "description": "Index not caught up"}},
    dependencies=[ReadKey],
    summary="Readiness: every index has applied the whole op log and holds every stored vector",
)
def readyz(engine: EngineDep) -> JSONResponse:
    # engine.stats() follows the op log (writes of other processes too), then compares the
    # store's last LSN and vector counts with each index, read from one store snapshot
    stats = engine.stats()
    behind = {name: s["lag"] for name, s in stats["spaces"].items() if s["lag"] != 0}
    if behind:
        return envelope(503, "not_ready", f"index behind the op log by {behind} ops")
    differ = {
        name: f"index {s['vectors']}, store {s['store_vectors']}"
        for name, s in stats["spaces"].items()
        if s["vectors"] != s["store_vectors"]
    }
    if differ:
        return envelope(503, "not_ready", f"index and store disagree on vector counts: {differ}")
    lags = {name: s["lag"] for name, s in stats["spaces"].items()}
    return JSONResponse({"status": "ready", "lsn": stats["lsn"], "lag": lags})


@router.get("/stats", tags=["system"], dependencies=[ReadKey])
def stats(engine: EngineDep) -> JSONResponse:
    return JSONResponse(engine.stats())


@router.get(
    "/metrics",
    tags=["system"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    dependencies=[ReadKey],
)
def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get(
    "/fleet/status",
    tags=["system"],
    dependencies=[ReadKey],
    summary="Fleet view (nodes, shards, lag, drift); 404 when this node is not in a fleet",
)
async def fleet_status(request: Request) -> JSONResponse:
    provider = getattr(request.app.state, "fleet_status", None)
    if provider is None:
        raise NotFoundError("this node is not part of a fleet")
    if inspect.iscoroutinefunction(provider):
        result: Any = await provider()
    else:
        result = await run_in_threadpool(provider)
        if inspect.isawaitable(result):
            result = await result
    return JSONResponse(result)


def _keys(request: Request) -> KeyStore:
    return request.app.state.keys  # type: ignore[no-any-return]


@router.get(
    "/admin/keys", tags=["admin"], responses={200: {"model": list[KeyOut]}}, dependencies=[AdminKey]
)
def list_keys(request: Request) -> JSONResponse:
    return JSONResponse([k.public() for k in _keys(request).list()])


@router.post(
    "/admin/keys",
    tags=["admin"],
    status_code=201,
    responses={201: {"model": KeyCreated}},
    dependencies=[AdminKey],
)
def create_key(body: KeyCreate, request: Request) -> JSONResponse:
    record, secret = _keys(request).create(body.scope, body.name)
    return JSONResponse({**record.public(), "key": secret}, status_code=201)


@router.delete(
    "/admin/keys/{key_id}",
    tags=["admin"],
    responses={200: {"model": KeyOut}},
    dependencies=[AdminKey],
)
def revoke_key(key_id: str, request: Request) -> JSONResponse:
    keys = _keys(request)
    record = next((k for k in keys.list() if k.id == key_id), None)
    if record is None:
        raise NotFoundError(f"key {key_id!r} not found")
    keys.revoke(key_id)
    return JSONResponse(record.public())
